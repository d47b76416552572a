#include "classifier/acl_table.h"

#include <rte_acl.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "identity/strutil.h"

namespace meshgate::classifier {
namespace {

enum { kFieldProto, kFieldSubject, kFieldPeer, kFieldPort, kFieldDir, kNumFields };

RTE_ACL_RULE_DEF(AclRule, kNumFields);

// Field layout over AclKey. rte_acl requires the first field to be one byte;
// every input_index covers 4 consecutive bytes of the key.
const rte_acl_field_def kFieldDefs[kNumFields] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), kFieldProto, 0, offsetof(AclKey, proto)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint32_t), kFieldSubject, 1,
     offsetof(AclKey, subject_class)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint32_t), kFieldPeer, 2, offsetof(AclKey, peer_class)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kFieldPort, 3, offsetof(AclKey, dport)},
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint16_t), kFieldDir, 3, offsetof(AclKey, dir)},
};

// One category: every deny rule outranks every allow rule, so the single
// best match is a deny whenever one matches (deny beats allow, Cilium
// deny.rst) and otherwise the first allow. Two categories (deny, allow)
// measured ~40% slower at 10k rules and ~6% at 100k
// (docs/design/classifier.md).
constexpr uint32_t kCategories = 1;
constexpr uint32_t kDenyBit = 1u << 31;          // in userdata
constexpr int32_t kDenyBase = RTE_ACL_MAX_PRIORITY;
constexpr int32_t kAllowBase = RTE_ACL_MAX_PRIORITY / 2;
constexpr uint32_t kMaxRuleId = RTE_ACL_MAX_PRIORITY / 2 - 1;

std::atomic<uint64_t> g_table_seq{0};  // unique rte_acl / rte_hash names
std::atomic<uint64_t> g_acl_id{0};     // AclTable::id()

size_t HeapAllocated() {
  size_t total = 0;
  for (unsigned s = 0; s < rte_socket_count(); ++s) {
    rte_malloc_socket_stats st;
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(s), &st) == 0) {
      total += st.heap_allocsz_bytes;
    }
  }
  return total;
}

// One rte_acl context over `specs` (non-empty; local rule ids).
absl::StatusOr<rte_acl_ctx*> BuildContext(const std::vector<AclRuleSpec>& specs, int socket_id) {
  std::string name = meshgate::StrCat("mgacl", g_table_seq.fetch_add(1));
  rte_acl_param prm{};
  prm.name = name.c_str();
  prm.socket_id = socket_id;
  prm.rule_size = RTE_ACL_RULE_SZ(kNumFields);
  prm.max_rule_num = uint32_t(specs.size());
  rte_acl_ctx* ctx = rte_acl_create(&prm);
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("rte_acl_create: ", rte_strerror(rte_errno)));
  }
  std::vector<AclRule> rules(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const AclRuleSpec& s = specs[i];
    AclRule& r = rules[i];
    std::memset(&r, 0, sizeof(r));
    bool deny = s.category == AclRuleSpec::kDeny;
    r.data.category_mask = 1;
    r.data.priority = (deny ? kDenyBase : kAllowBase) - int32_t(s.rule_id);
    r.data.userdata = s.rule_id | (deny ? kDenyBit : 0);
    r.field[kFieldProto].value.u8 = s.proto;
    r.field[kFieldProto].mask_range.u8 = s.proto == 0 ? 0 : 0xff;
    r.field[kFieldSubject].value.u32 = s.subject_lo;
    r.field[kFieldSubject].mask_range.u32 = s.subject_hi;
    r.field[kFieldPeer].value.u32 = s.peer_lo;
    r.field[kFieldPeer].mask_range.u32 = s.peer_hi;
    r.field[kFieldPort].value.u16 = s.port_lo;
    r.field[kFieldPort].mask_range.u16 = s.port_hi;
    r.field[kFieldDir].value.u16 = uint16_t(s.dir);
    r.field[kFieldDir].mask_range.u16 = 0xffff;
  }
  int rc = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(rules.data()),
                             uint32_t(rules.size()));
  if (rc != 0) {
    rte_acl_free(ctx);
    return absl::InternalError(meshgate::StrCat("rte_acl_add_rules: ", rte_strerror(-rc)));
  }
  rte_acl_config cfg{};
  cfg.num_categories = kCategories;
  cfg.num_fields = kNumFields;
  std::memcpy(cfg.defs, kFieldDefs, sizeof(kFieldDefs));
  cfg.max_size = 0;  // no limit: an unreachable limit makes the build spin
  rc = rte_acl_build(ctx, &cfg);
  if (rc != 0) {
    rte_acl_free(ctx);
    return absl::ResourceExhaustedError(meshgate::StrCat("rte_acl_build: ", rte_strerror(-rc)));
  }
  return ctx;
}

}  // namespace

struct AclTable::Context {
  rte_acl_ctx* ctx = nullptr;  // null when there are no rules
  size_t memory_bytes = 0;
  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    if (ctx != nullptr) rte_acl_free(ctx);
  }
};

struct AclTable::Consolidated {
  std::shared_ptr<const Context> ctx;
  uint32_t num_ids = 0;  // local ids 1..num_ids
  // What it was built from, per partition: the rules (partition-local ids)
  // and each one's local id in this context; and the subject class keys.
  std::vector<std::vector<AclRuleSpec>> part_specs;
  std::vector<std::vector<uint32_t>> part_local;  // [p][rank] -> local id, [p][0] = 0
  std::vector<uint64_t> keys;
};

struct AclTable::Changed {
  std::shared_ptr<const Context> ctx;
  std::vector<AclRuleSpec> specs;  // partition-local ids
};

namespace {

// Sorted distinct rule ids of `rules` behind a leading 0: index = local id.
std::vector<uint32_t> LocalIds(const std::vector<const AclRuleSpec*>& rules) {
  std::vector<uint32_t> ids = {0};
  for (const AclRuleSpec* r : rules) ids.push_back(r->rule_id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

uint32_t LocalId(const std::vector<uint32_t>& ids, uint32_t rule_id) {
  return uint32_t(std::lower_bound(ids.begin(), ids.end(), rule_id) - ids.begin());
}

}  // namespace

absl::StatusOr<std::unique_ptr<AclTable>> AclTable::Build(const CompiledPolicy& cp,
                                                          int socket_id,
                                                          const AclTable* previous,
                                                          uint32_t partitions) {
  if (partitions > kMaxPartitions) {
    return absl::InvalidArgumentError(
        meshgate::StrCat("at most ", kMaxPartitions, " ACL partitions, not ", partitions));
  }
  std::unique_ptr<AclTable> t(new AclTable());
  t->id_ = g_acl_id.fetch_add(1, std::memory_order_relaxed) + 1;
  t->enforced_ = cp.enforced;
  t->subject_keys_ = cp.subject_class_key;
  t->specs_ = cp.rules;
  t->audit_ = cp.options.audit;
  t->num_rules_ = uint32_t(cp.rules.size());
  for (const auto& r : cp.rules) {
    if (r.rule_id == 0 || r.rule_id > kMaxRuleId) {
      return absl::InternalError(meshgate::StrCat("rule id out of range: ", r.ToString()));
    }
  }
  auto make_context = [&](const std::vector<AclRuleSpec>& specs)
      -> absl::StatusOr<std::shared_ptr<const Context>> {
    auto c = std::make_shared<Context>();
    ++t->contexts_built_;
    t->rules_built_ += uint32_t(specs.size());
    if (specs.empty()) return c;
    size_t before = HeapAllocated();
    auto ctx = BuildContext(specs, socket_id);
    if (!ctx.ok()) return ctx.status();
    c->ctx = *ctx;
    size_t after = HeapAllocated();
    c->memory_bytes = after > before ? after - before : 0;
    return c;
  };

  // Subject class -> partition, by the class's content key (the class
  // number when the compilation has none, e.g. a hand-made one).
  const uint32_t nsub = uint32_t(cp.enforced.size());
  auto key_of = [&](uint32_t c) -> uint64_t {
    return c < cp.subject_class_key.size() ? cp.subject_class_key[c] : c;
  };
  uint32_t nparts = partitions != 0                                         ? partitions
                    : cp.rules.size() >= kPartitionMinRules && nsub >= 2 ? kMaxPartitions
                                                                         : 1;
  if (nsub == 0) nparts = 1;  // no classes to place (a hand-made compilation)
  std::vector<uint8_t> part_of;
  std::vector<std::vector<const AclRuleSpec*>> members;  // per partition
  for (;;) {
    part_of.assign(std::max<uint32_t>(nsub, 1), 0);
    for (uint32_t c = 0; c < nsub && nparts > 1; ++c) part_of[c] = uint8_t(key_of(c) % nparts);
    members.assign(nparts, {});
    if (nparts == 1) {
      for (const auto& r : cp.rules) members[0].push_back(&r);
      break;
    }
    // below[p][c] = classes of partition p numbered below c: a rule joins
    // partition p when its subject range holds one of them.
    std::vector<std::vector<uint32_t>> below(nparts, std::vector<uint32_t>(nsub + 1, 0));
    for (uint32_t p = 0; p < nparts; ++p) {
      for (uint32_t c = 0; c < nsub; ++c) below[p][c + 1] = below[p][c] + (part_of[c] == p);
    }
    size_t placed = 0;
    for (const auto& r : cp.rules) {
      uint32_t lo = std::min(r.subject_lo, nsub), hi = std::min(r.subject_hi, nsub - 1);
      for (uint32_t p = 0; p < nparts; ++p) {
        if (lo <= hi && below[p][hi + 1] > below[p][lo]) {
          members[p].push_back(&r);
          ++placed;
        }
      }
    }
    // A rule whose subjects span partitions is in each of them: when that
    // adds more than half again the rules, partitions would make a change
    // cost more, not less.
    if (partitions != 0 || placed * 2 <= cp.rules.size() * 3) break;
    nparts = 1;
  }
  // Each partition's rules with local ids (their rank).
  std::vector<std::vector<AclRuleSpec>> part_specs(nparts);
  for (uint32_t p = 0; p < nparts; ++p) {
    t->part_ids_.push_back(LocalIds(members[p]));
    for (const AclRuleSpec* r : members[p]) {
      part_specs[p].push_back(*r);
      part_specs[p].back().rule_id = LocalId(t->part_ids_[p], r->rule_id);
    }
  }

  // The partitions the previous table's consolidated context still
  // answers for: the same rules, and every class in them has the number
  // and content it had when that context was built (so no rule of another
  // partition can match their keys there).
  const Consolidated* base = nullptr;
  if (previous != nullptr && previous->consolidated_ != nullptr && previous->num_partitions() == nparts) {
    base = previous->consolidated_.get();
  }
  std::vector<bool> changed(nparts, false);
  if (base != nullptr) {
    std::vector<bool> same_classes(nparts, true);
    for (uint32_t c = 0; c < nsub; ++c) {
      if (c >= base->keys.size() || base->keys[c] != key_of(c)) same_classes[part_of[c]] = false;
    }
    uint32_t nchanged = 0;
    size_t changed_rules = 0;
    for (uint32_t p = 0; p < nparts; ++p) {
      changed[p] = !same_classes[p] || part_specs[p] != base->part_specs[p];
      if (changed[p]) {
        ++nchanged;
        changed_rules += part_specs[p].size();
      }
    }
    // Too many contexts to classify with, or about as much to build as all
    // of it: consolidate.
    if (nchanged > kMaxChanged ||
        (partitions == 0 && nchanged > 0 && changed_rules * 2 >= cp.rules.size())) {
      base = nullptr;
    }
  }

  if (base == nullptr) {
    auto c = std::make_shared<Consolidated>();
    std::vector<const AclRuleSpec*> all;
    for (const auto& r : cp.rules) all.push_back(&r);
    t->consolidated_ids_ = LocalIds(all);
    std::vector<AclRuleSpec> specs = cp.rules;
    for (auto& r : specs) r.rule_id = LocalId(t->consolidated_ids_, r.rule_id);
    auto ctx = make_context(specs);
    if (!ctx.ok()) return ctx.status();
    c->ctx = std::move(*ctx);
    c->num_ids = uint32_t(t->consolidated_ids_.size() - 1);
    c->part_specs = std::move(part_specs);
    for (uint32_t p = 0; p < nparts; ++p) {
      std::vector<uint32_t> local;
      for (uint32_t id : t->part_ids_[p]) local.push_back(LocalId(t->consolidated_ids_, id));
      c->part_local.push_back(std::move(local));
    }
    for (uint32_t k = 0; k < nsub; ++k) c->keys.push_back(key_of(k));
    t->consolidated_ = std::move(c);
    t->changed_.assign(nparts, nullptr);
  } else {
    t->consolidated_ = previous->consolidated_;
    t->consolidated_ids_.assign(base->num_ids + 1, 0);
    t->changed_.assign(nparts, nullptr);
    for (uint32_t p = 0; p < nparts; ++p) {
      if (!changed[p]) {
        // Its rules are the consolidated context's, renumbered.
        const auto& local = base->part_local[p];
        for (size_t k = 1; k < local.size(); ++k) t->consolidated_ids_[local[k]] = t->part_ids_[p][k];
        continue;
      }
      const auto& prev = previous->changed_[p];
      if (prev != nullptr && prev->specs == part_specs[p]) {
        t->changed_[p] = prev;
        continue;
      }
      auto ch = std::make_shared<Changed>();
      auto ctx = make_context(part_specs[p]);
      if (!ctx.ok()) return ctx.status();
      ch->ctx = std::move(*ctx);
      ch->specs = std::move(part_specs[p]);
      t->changed_[p] = std::move(ch);
    }
  }

  // Slots: [0] the consolidated context, then one per changed partition.
  t->hot_.push_back({t->consolidated_->ctx->ctx, t->consolidated_ids_.data()});
  std::vector<uint8_t> slot_of_part(nparts, 0);
  for (uint32_t p = 0; p < nparts; ++p) {
    if (t->changed_[p] == nullptr) continue;
    slot_of_part[p] = uint8_t(t->hot_.size());
    t->hot_.push_back({t->changed_[p]->ctx->ctx, t->part_ids_[p].data()});
  }
  t->slot_of_.resize(part_of.size());
  for (size_t c = 0; c < part_of.size(); ++c) t->slot_of_[c] = slot_of_part[part_of[c]];
  return t;
}

size_t AclTable::memory_bytes() const {
  size_t total = consolidated_->ctx->memory_bytes;
  for (const auto& c : changed_) {
    if (c != nullptr) total += c->ctx->memory_bytes;
  }
  return total;
}

AclTable::~AclTable() = default;

const char* AclTable::BestMethod() {
  if (rte_vect_get_max_simd_bitwidth() >= RTE_VECT_SIMD_512 &&
      rte_cpu_get_flag_enabled(RTE_CPUFLAG_AVX512BW))
    return "avx512x32";
  if (rte_vect_get_max_simd_bitwidth() >= RTE_VECT_SIMD_256 &&
      rte_cpu_get_flag_enabled(RTE_CPUFLAG_AVX2))
    return "avx2";
  if (rte_cpu_get_flag_enabled(RTE_CPUFLAG_SSE4_1)) return "sse";
  return "scalar";
}

void AclTable::Classify(const AclKey* const* keys, uint32_t n,
                        PolicyResult* out) const noexcept {
  uint32_t res[kChunk];
  uint8_t slot[kChunk];
  const uint32_t nclasses = uint32_t(enforced_.size());
  const uint32_t nsub = uint32_t(slot_of_.size());
  const uint32_t nslots = uint32_t(hot_.size());
  const uint8_t* enforced = enforced_.data();
  for (uint32_t base = 0; base < n; base += kChunk) {
    const uint32_t m = n - base < kChunk ? n - base : kChunk;
    const AclKey* const* in = keys + base;
    if (nslots == 1) {
      std::memset(slot, 0, m);
      if (hot_[0].ctx != nullptr) {
        rte_acl_classify(hot_[0].ctx, reinterpret_cast<const uint8_t**>(const_cast<const AclKey**>(in)),
                         res, m, kCategories);
      } else {
        std::memset(res, 0, sizeof(uint32_t) * m);
      }
    } else {
      // Group the keys by their subject's context (a counting sort), one
      // classify call per context present, results back in key order.
      constexpr uint32_t kMaxSlots = kMaxChanged + 1;
      uint32_t start[kMaxSlots + 1] = {};
      for (uint32_t i = 0; i < m; ++i) {
        uint32_t subject = rte_be_to_cpu_32(in[i]->subject_class);
        slot[i] = slot_of_[subject < nsub ? subject : 0];
        ++start[slot[i] + 1];
      }
      for (uint32_t c = 0; c < nslots; ++c) start[c + 1] += start[c];
      const AclKey* grouped[kChunk];
      uint32_t at[kChunk], grouped_res[kChunk], fill[kMaxSlots];
      for (uint32_t c = 0; c < nslots; ++c) fill[c] = start[c];
      for (uint32_t i = 0; i < m; ++i) {
        uint32_t j = fill[slot[i]]++;
        grouped[j] = in[i];
        at[j] = i;
      }
      for (uint32_t c = 0; c < nslots; ++c) {
        uint32_t cnt = start[c + 1] - start[c];
        if (cnt == 0) continue;
        if (hot_[c].ctx != nullptr) {
          rte_acl_classify(hot_[c].ctx, reinterpret_cast<const uint8_t**>(&grouped[start[c]]),
                           &grouped_res[start[c]], cnt, kCategories);
        } else {
          std::memset(&grouped_res[start[c]], 0, sizeof(uint32_t) * cnt);
        }
      }
      for (uint32_t j = 0; j < m; ++j) res[at[j]] = grouped_res[j];
    }
    for (uint32_t i = 0; i < m; ++i) {
      const AclKey* k = in[i];
      uint32_t match = res[i];
      PolicyResult& r = out[base + i];
      r.reserved = 0;
      r.rule_id = hot_[slot[i]].rule_id[match & ~kDenyBit];
      if (match & kDenyBit) {
        r.verdict = audit_ ? Verdict::kAudit : Verdict::kDropped;
        r.reason = PolicyReason::kPolicyDeny;
        continue;
      }
      uint32_t subject = rte_be_to_cpu_32(k->subject_class);
      uint32_t dir = rte_be_to_cpu_16(k->dir) & 1;
      bool dd = subject < nclasses ? (enforced[subject] >> dir) & 1 : 0;
      if (match != 0 || !dd) {
        r.verdict = Verdict::kForwarded;
        r.reason = PolicyReason::kNone;
      } else {
        r.verdict = audit_ ? Verdict::kAudit : Verdict::kDropped;
        r.reason = PolicyReason::kPolicyDenied;
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<IdentityClassTable>> IdentityClassTable::Build(
    const CompiledPolicy& cp, int socket_id) {
  std::unique_ptr<IdentityClassTable> t(new IdentityClassTable());
  t->socket_ = socket_id;
  t->zero_page_ = static_cast<uint32_t*>(rte_zmalloc_socket(
      "mg_idclass_zero", sizeof(uint32_t) << kPageBits, RTE_CACHE_LINE_SIZE, socket_id));
  if (t->zero_page_ == nullptr) return absl::ResourceExhaustedError("identity class table: no memory");
  for (auto& d : t->dir_) d = t->zero_page_;
  for (const auto& [id, cls] : cp.peer_class_of) {
    auto st = t->Set(id, cls);
    if (!st.ok()) return st;
  }
  t->NewEpoch();
  return t;
}

void IdentityClassTable::NewEpoch() {
  static std::atomic<uint32_t> next{0};
  uint32_t e = next.fetch_add(1, std::memory_order_relaxed) + 1;
  if (e == 0) e = next.fetch_add(1, std::memory_order_relaxed) + 1;  // 0 means "none"
  __atomic_store_n(&epoch_, e, __ATOMIC_RELEASE);
}

IdentityClassTable::~IdentityClassTable() {
  for (auto* d : dir_) {
    if (d != zero_page_) rte_free(d);
  }
  rte_free(zero_page_);
}

absl::Status IdentityClassTable::Set(uint32_t id, uint32_t cls) {
  if (id >= (kDirectorySize << kPageBits)) {
    return absl::InvalidArgumentError(meshgate::StrCat("identity ", id, " out of table range"));
  }
  uint32_t*& slot = dir_[id >> kPageBits];
  if (slot == zero_page_) {
    if (cls == 0) return absl::OkStatus();
    auto* page = static_cast<uint32_t*>(rte_zmalloc_socket(
        "mg_idclass", sizeof(uint32_t) << kPageBits, RTE_CACHE_LINE_SIZE, socket_));
    if (page == nullptr) return absl::ResourceExhaustedError("identity class table: no memory");
    page[id & ((1u << kPageBits) - 1)] = cls;
    __atomic_store_n(&slot, page, __ATOMIC_RELEASE);  // filled before published
    ++pages_;
    NewEpoch();
    return absl::OkStatus();
  }
  __atomic_store_n(&slot[id & ((1u << kPageBits) - 1)], cls, __ATOMIC_RELAXED);
  NewEpoch();
  return absl::OkStatus();
}

void IdentityClassTable::Erase(uint32_t id) {
  if (id >= (kDirectorySize << kPageBits)) return;
  uint32_t* page = dir_[id >> kPageBits];
  if (page != zero_page_) __atomic_store_n(&page[id & ((1u << kPageBits) - 1)], 0u, __ATOMIC_RELAXED);
  NewEpoch();
}

size_t IdentityClassTable::memory_bytes() const {
  return (size_t(pages_) + 1) * (sizeof(uint32_t) << kPageBits) + sizeof(*this);
}

absl::StatusOr<std::unique_ptr<HashIdentityClassTable>> HashIdentityClassTable::Build(
    const CompiledPolicy& cp, uint32_t capacity, int socket_id) {
  std::unique_ptr<HashIdentityClassTable> t(new HashIdentityClassTable());
  if (capacity < cp.peer_class_of.size() + 1) capacity = uint32_t(cp.peer_class_of.size() + 1);
  std::string name = meshgate::StrCat("mgidc", g_table_seq.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = capacity < 8 ? 8 : capacity;
  p.key_len = sizeof(uint32_t);
  p.hash_func = rte_hash_crc;
  p.socket_id = socket_id;
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  t->h_ = rte_hash_create(&p);
  if (t->h_ == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("rte_hash_create(", capacity, "): ", rte_strerror(rte_errno)));
  }
  for (const auto& [id, cls] : cp.peer_class_of) {
    if (rte_hash_add_key_data(t->h_, &id, reinterpret_cast<void*>(uintptr_t(cls))) != 0) {
      return absl::ResourceExhaustedError("identity hash full");
    }
  }
  return t;
}

HashIdentityClassTable::~HashIdentityClassTable() {
  if (h_ != nullptr) rte_hash_free(h_);
}

void HashIdentityClassTable::LookupBulk(const uint32_t* ids, uint32_t n,
                                        uint32_t* classes) const noexcept {
  const void* keys[RTE_HASH_LOOKUP_BULK_MAX];
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  uint64_t hits = 0;
  if (n > RTE_HASH_LOOKUP_BULK_MAX) n = RTE_HASH_LOOKUP_BULK_MAX;
  for (uint32_t i = 0; i < n; ++i) keys[i] = &ids[i];
  rte_hash_lookup_bulk_data(h_, keys, n, &hits, data);
  for (uint32_t i = 0; i < n; ++i) {
    classes[i] = (hits >> i) & 1 ? uint32_t(uintptr_t(data[i])) : 0;
  }
}

}  // namespace meshgate::classifier
