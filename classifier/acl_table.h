// The fast path of the classifier: verdicts for a burst in one
// rte_acl_classify call.
//
// The ACL key has no addresses (compile.h): {protocol, subject class, peer
// class, destination port (ICMP type), direction}. Deny and allow rules share
// one category in two priority bands: every deny rule outranks every allow
// rule, so the one best match is a deny whenever one matches.
// rte_acl compares multi-byte fields in network byte order (DPDK
// app/test/test_acl.c converts its traces with rte_cpu_to_be_*), hence the
// big-endian key.
//
// Thread-safety (DPDK lib/acl/rte_acl.h): building is not multi-thread safe,
// classification is. A table is built by the control thread, published in a
// snapshot, read by any number of workers, and never modified after Build.
// The hot path (Classify) allocates nothing, takes no lock, logs nothing.
#pragma once

#include <rte_byteorder.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/compile.h"
#include "classifier/verdict.h"

struct rte_acl_ctx;
struct rte_hash;

namespace meshgate::classifier {

struct alignas(4) AclKey {
  uint8_t proto;
  uint8_t pad[3];
  rte_be32_t subject_class;
  rte_be32_t peer_class;
  rte_be16_t dport;  // ICMP/ICMPv6: the type
  rte_be16_t dir;    // Direction
};
static_assert(sizeof(AclKey) == 16);

inline void MakeAclKey(AclKey& k, uint8_t proto, uint32_t subject, uint32_t peer,
                       uint16_t dport, Direction dir) {
  // Two 8-byte stores: the verdict cache hashes the key as two 8-byte words
  // right away, and a load over several smaller stores cannot be forwarded
  // from the store buffer (a stall of ~a dozen cycles per key).
  // (__builtin_bswap: DPDK's x86 swap of a variable is an asm statement.)
  static_assert(RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN);
  static_assert(offsetof(AclKey, subject_class) == 4 && offsetof(AclKey, peer_class) == 8 &&
                offsetof(AclKey, dport) == 12 && offsetof(AclKey, dir) == 14);
  const uint64_t w0 = uint64_t(proto) | uint64_t(__builtin_bswap32(subject)) << 32;
  const uint64_t w1 = uint64_t(__builtin_bswap32(peer)) |
                      uint64_t(__builtin_bswap16(dport)) << 32 |
                      uint64_t(__builtin_bswap16(uint16_t(dir))) << 48;
  auto* p = reinterpret_cast<uint8_t*>(&k);
  std::memcpy(p, &w0, 8);
  std::memcpy(p + 8, &w1, 8);
}

// The rules, partitioned by subject class for updates (docs/design/
// classifier.md, "Partitions"): each subject class belongs to one of up to
// kMaxPartitions partitions, chosen by its CompiledPolicy::subject_class_key,
// and a rule is in every partition holding a class of its subject range.
// A table classifies with one rte_acl context built from every rule (the
// consolidated context) and, for each partition whose rules changed since
// that context was built, a context of the partition's rules; a key goes to
// its subject's partition's context if it has one, else to the consolidated
// one. So a policy change builds only the partitions of the subjects it
// selects, while classification stays one call per burst for every subject
// the change did not touch. A table built without a previous one, or with
// more than kMaxChanged partitions changed (or half its rules), builds one
// consolidated context again. Rule ids in a context are local (their rank,
// which keeps their priority order); each table maps them to its
// compilation's rule ids, which shift when an earlier policy changes.
class AclTable {
 public:
  static constexpr uint32_t kMaxPartitions = 16;
  static constexpr uint32_t kMaxChanged = 4;
  // Fewer rules than this make one partition: a full build is then cheap
  // (~30 us per rule here).
  static constexpr uint32_t kPartitionMinRules = 1024;

  // Builds the table of `cp` on `socket_id` (-1 = any), on `previous` when
  // given: its contexts stay in use for the partitions whose rules did not
  // change. `partitions` = 0 chooses (kMaxPartitions from
  // kPartitionMinRules rules on, unless placing the rules that span
  // partitions in each of them would add more than half again the rules;
  // else 1);
  // 1..kMaxPartitions forces that many and keeps changed partitions apart
  // until there are more than kMaxChanged (tests). The build uses the best
  // classify method this CPU and EAL's max SIMD bitwidth allow (AVX-512
  // needs --force-max-simd-bitwidth=512).
  static absl::StatusOr<std::unique_ptr<AclTable>> Build(const CompiledPolicy& cp,
                                                         int socket_id = -1,
                                                         const AclTable* previous = nullptr,
                                                         uint32_t partitions = 0);
  ~AclTable();
  AclTable(const AclTable&) = delete;
  AclTable& operator=(const AclTable&) = delete;

  // Whether this table was built from exactly `cp`'s rules, default
  // enforcement, audit mode and subject partitions: a snapshot whose
  // compilation changed none of them (an endpoint joining an existing class,
  // a service change) reuses the table instead of building it again
  // (docs/design/classifier.md).
  bool SameRules(const CompiledPolicy& cp) const {
    return cp.rules == specs_ && cp.enforced == enforced_ && cp.options.audit == audit_ &&
           cp.subject_class_key == subject_keys_;
  }

  // Verdicts for `n` keys. Any n; processed in chunks of kChunk.
  void Classify(const AclKey* const* keys, uint32_t n, PolicyResult* out) const noexcept;

  static constexpr uint32_t kChunk = 64;
  // Unique per Build in this process (from 1, never reused): what a
  // VerdictCache entry records as the table that decided it.
  uint64_t id() const { return id_; }
  uint32_t num_rules() const { return num_rules_; }
  // rte_acl memory of this table's contexts (shared ones included).
  size_t memory_bytes() const;
  uint32_t num_partitions() const { return uint32_t(part_ids_.size()); }
  // rte_acl contexts a classify may use: the consolidated one and one per
  // changed partition.
  uint32_t num_contexts() const { return uint32_t(hot_.size()); }
  // Contexts this Build made (the rest came from `previous`), and the rules
  // it passed to rte_acl_build.
  uint32_t contexts_built() const { return contexts_built_; }
  uint32_t rules_built() const { return rules_built_; }
  // The classify method rte_acl picks on this CPU under EAL's max SIMD
  // bitwidth (DPDK's own order: AVX-512, AVX2, SSE, scalar).
  static const char* BestMethod();

 private:
  struct Context;       // one rte_acl context
  struct Consolidated;  // the context of every rule and what it was built from
  struct Changed;       // the context of one changed partition
  struct Slot {
    const rte_acl_ctx* ctx;   // null when it has no rules
    const uint32_t* rule_id;  // its local id -> the compilation's rule id
  };
  AclTable() = default;
  std::shared_ptr<const Consolidated> consolidated_;
  std::vector<std::shared_ptr<const Changed>> changed_;  // per partition; null = consolidated
  std::vector<uint32_t> consolidated_ids_;  // its local id -> this compilation's, [0] = 0
  std::vector<std::vector<uint32_t>> part_ids_;  // per partition: rank -> rule id, [0] = 0
  std::vector<Slot> hot_;                        // [0] = consolidated
  std::vector<uint8_t> slot_of_;                 // per subject class
  std::vector<uint8_t> enforced_;
  std::vector<uint64_t> subject_keys_;
  std::vector<AclRuleSpec> specs_;  // what the table was built from
  bool audit_ = false;
  uint64_t id_ = 0;
  uint32_t num_rules_ = 0;
  uint32_t contexts_built_ = 0;
  uint32_t rules_built_ = 0;
};

// Identity -> peer class: a paged flat array indexed by the identity.
//
// Identities are structured (numeric.h): bits 16-23 (or 15-23) are the
// cluster, the local scope is 1<<24. The table has one page of 65,536 classes
// per populated 64 Ki block of identities (a cluster, or a slice of the local
// scope), reached through a 512-entry directory that stays in L1. A lookup is
// two dependent loads with no hashing and no probing; absent pages point to a
// shared zero page (class 0), so there is no branch either. Measured against
// rte_hash in docs/design/classifier.md.
//
// Concurrency (docs/design/classifier.md): one writer (the control thread),
// any number of readers (workers). A class is a 32-bit aligned word written
// with a relaxed atomic store; a new page is filled before its directory slot
// is published with a release store; pages are freed only with the table,
// after the snapshot holding it has passed an RCU grace period. So an
// identity that joins an existing class is visible to workers without an ACL
// rebuild (architecture.md invariant 1).
class IdentityClassTable {
 public:
  static constexpr uint32_t kDirectorySize = 512;  // covers ids < 1<<25
  static constexpr uint32_t kPageBits = 16;

  static absl::StatusOr<std::unique_ptr<IdentityClassTable>> Build(
      const CompiledPolicy& cp, int socket_id = -1);
  ~IdentityClassTable();
  IdentityClassTable(const IdentityClassTable&) = delete;
  IdentityClassTable& operator=(const IdentityClassTable&) = delete;

  // Control thread only (single writer).
  absl::Status Set(uint32_t identity, uint32_t peer_class);
  void Erase(uint32_t identity);

  // Workers: the class of an identity; unknown (or >= 1<<25) -> 0.
  uint32_t Lookup(uint32_t id) const noexcept {
    const uint32_t* page = __atomic_load_n(&dir_[(id >> kPageBits) & (kDirectorySize - 1)],
                                           __ATOMIC_ACQUIRE);
    uint32_t c = __atomic_load_n(&page[id & ((1u << kPageBits) - 1)], __ATOMIC_RELAXED);
    return id < (kDirectorySize << kPageBits) ? c : 0;
  }
  // Hints the class of `id` into the cache (a burst looks several up).
  void Prefetch(uint32_t id) const noexcept {
    const uint32_t* page = __atomic_load_n(&dir_[(id >> kPageBits) & (kDirectorySize - 1)],
                                           __ATOMIC_ACQUIRE);
    __builtin_prefetch(&page[id & ((1u << kPageBits) - 1)]);
  }
  void LookupBulk(const uint32_t* ids, uint32_t n, uint32_t* classes) const noexcept {
    for (uint32_t i = 0; i < n; ++i) classes[i] = Lookup(ids[i]);
  }
  size_t memory_bytes() const;
  // Unique among every class table of the process and every change made to
  // one: drawn from a process-wide counter at Build and after each Set or
  // Erase (release). A verdict derived from lookups made after reading epoch
  // e is current while the table's epoch is still e (the conntrack verdict
  // cache in dataplane/conntrack.h is stamped with it). Never 0.
  uint32_t epoch() const noexcept { return __atomic_load_n(&epoch_, __ATOMIC_ACQUIRE); }

 private:
  IdentityClassTable() = default;
  void NewEpoch();
  uint32_t epoch_ = 0;  // dp: acquire loads; cp: release stores
  int socket_ = -1;
  uint32_t* zero_page_ = nullptr;
  uint32_t* dir_[kDirectorySize] = {};  // dp: ro (acquire), cp: rw (release store)
  uint32_t pages_ = 0;
};

// The previous design, kept for the benchmark's comparison only: an rte_hash
// with lock-free readers (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF).
class HashIdentityClassTable {
 public:
  static absl::StatusOr<std::unique_ptr<HashIdentityClassTable>> Build(
      const CompiledPolicy& cp, uint32_t capacity, int socket_id = -1);
  ~HashIdentityClassTable();
  HashIdentityClassTable(const HashIdentityClassTable&) = delete;
  HashIdentityClassTable& operator=(const HashIdentityClassTable&) = delete;
  // n <= 64
  void LookupBulk(const uint32_t* ids, uint32_t n, uint32_t* classes) const noexcept;

 private:
  HashIdentityClassTable() = default;
  rte_hash* h_ = nullptr;
};

}  // namespace meshgate::classifier
