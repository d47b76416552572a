#include "dataplane/conntrack.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "identity/strutil.h"

namespace meshgate::dataplane {

CtKey CtKey::Reversed() const {
  CtKey r = *this;
  std::memcpy(r.src, dst, 16);
  std::memcpy(r.dst, src, 16);
  r.sport = dport;
  r.dport = sport;
  return r;
}

absl::StatusOr<std::unique_ptr<Conntrack>> Conntrack::Create(uint32_t capacity,
                                                             rte_rcu_qsbr* qsbr, CtTimeouts t) {
  if (capacity < 8) capacity = 8;
  if (capacity > (1u << 30)) return absl::InvalidArgumentError("conntrack: capacity above 2^30");
  std::unique_ptr<Conntrack> ct(new Conntrack());
  ct->qsbr_ = qsbr;
  ct->capacity_ = capacity;
  std::random_device rd;  // the kernel's generator (getrandom)
  for (uint64_t& k : ct->hash_key_) k = (uint64_t(rd()) << 32 | rd()) | 1;  // odd
  // One index key per connection (both directions hash alike).
  if (auto st = ct->index_.Init(capacity, "conntrack"); !st.ok()) return st;
  static std::atomic<uint32_t> seq{0};
  std::string name = meshgate::StrCat("mgct", seq.fetch_add(1));
  ct->conns_ = static_cast<Conn*>(
      rte_malloc_socket(name.c_str(), sizeof(Conn) * size_t(capacity), 64, SOCKET_ID_ANY));
  ct->free_ = rte_ring_create_elem(name.c_str(), sizeof(uint32_t), capacity, SOCKET_ID_ANY,
                                   RING_F_EXACT_SZ);
  if (ct->conns_ == nullptr || ct->free_ == nullptr) {
    return absl::ResourceExhaustedError(meshgate::StrCat(
        "conntrack: cannot allocate ", capacity, " connections (",
        (sizeof(Conn) * uint64_t(capacity)) >> 20, " MiB of EAL memory): ",
        rte_strerror(rte_errno)));
  }
  std::uninitialized_value_construct_n(ct->conns_, capacity);
  ct->nat_ = std::make_unique<CtNat[]>(capacity);
  for (uint32_t i = 0; i < capacity;) {  // every record starts free
    uint32_t batch[256], k = 0;
    for (; k < 256 && i < capacity; ++k) batch[k] = i++;
    rte_ring_enqueue_bulk_elem(ct->free_, batch, sizeof(uint32_t), k, nullptr);
  }
  ct->tsc_hz_ = rte_get_tsc_hz();
  ct->timeout_tsc_[kSyn] = uint64_t(t.tcp_syn_s) * ct->tsc_hz_;
  ct->timeout_tsc_[kEstablished] = uint64_t(t.tcp_established_s) * ct->tsc_hz_;
  ct->timeout_tsc_[kClosing] = uint64_t(t.tcp_close_s) * ct->tsc_hz_;
  ct->timeout_tsc_[kOther] = uint64_t(t.other_s) * ct->tsc_hz_;
  ct->frag_timeout_tsc_ = uint64_t(t.fragment_s) * ct->tsc_hz_;
  auto fh = SharedHashCreate("conntrack fragments", std::max<uint32_t>(1024, capacity / 16),
                             sizeof(FragKey));
  if (!fh.ok()) return fh.status();
  ct->frag_h_ = *fh;
  ct->frag_sweep_.Init(ct->frag_h_, qsbr);
  ct->frags_ = std::make_unique<FragEntry[]>(ct->frag_sweep_.slots() + 1);
  return ct;
}

Conntrack::~Conntrack() {
  if (conns_ != nullptr) {
    std::destroy_n(conns_, capacity_);
    rte_free(conns_);
  }
  rte_ring_free(free_);
  if (frag_h_ != nullptr) rte_hash_free(frag_h_);
}

bool Conntrack::RecordFragment(const FragKey& k, uint16_t sport, uint16_t dport,
                               uint64_t now) noexcept {
  int32_t p = rte_hash_add_key(frag_h_, &k);
  if (p < 0) return false;
  FragEntry& e = frags_[p];
  e.expires.store(0, std::memory_order_relaxed);  // invalid while rewritten
  e.sport = sport;
  e.dport = dport;
  e.expires.store(now + frag_timeout_tsc_, std::memory_order_release);
  return true;
}

bool Conntrack::FindFragment(const FragKey& k, uint64_t now, uint16_t* sport,
                             uint16_t* dport) const noexcept {
  int32_t p = rte_hash_lookup(frag_h_, &k);
  if (p < 0) return false;
  const FragEntry& e = frags_[p];
  if (e.expires.load(std::memory_order_acquire) <= now) return false;
  *sport = e.sport;
  *dport = e.dport;
  return true;
}

uint32_t Conntrack::fragments() const { return uint32_t(rte_hash_count(frag_h_)); }

[[gnu::always_inline]] inline int32_t Conntrack::Find(const CtKey& k, Hash h, uint64_t now,
                                                      CtResult* res) const noexcept {
  CtResult dir = CtResult::kNew;
  uint32_t ref = index_.Find(h, [&](uint32_t r) {
    const Conn& c = conns_[r - 1];
    // An expired record of the same tuple may precede a live one.
    dir = CtDirection(c.tuple, k);
    return dir != CtResult::kNew && c.expires.load(std::memory_order_relaxed) > now;
  });
  if (ref == 0) {
    *res = CtResult::kNew;
    return -1;
  }
  *res = dir;
  return int32_t(ref - 1);
}

void Conntrack::LookupBurst(const CtKey* keys, uint16_t n, uint64_t now, CtResult* res,
                            int32_t* pos) const noexcept {
  Hash h[kMaxBurst];
  if (n > kMaxBurst) n = kMaxBurst;
  for (uint16_t i = 0; i < n; ++i) {
    h[i] = HashOf(keys[i]);
    Prefetch(h[i]);
  }
  LookupHashed(keys, h, n, now, res, pos);
}

uint16_t Conntrack::LookupHashed(const CtKey* keys, const Hash* h, uint16_t n, uint64_t now,
                                 CtResult* res, int32_t* pos) const noexcept {
  // One probe per packet, either direction (one index key per connection,
  // hashed alike both ways). The caller hashed each key and fetched its
  // bucket (Prefetch) as it built the key; then two passes over the burst
  // so that the misses overlap: fetch the first candidate record of each;
  // then compare. A packet not found has its bucket, where its connection
  // will go, in cache for Create. (Both halves cut `n` to kMaxBurst.)
  uint32_t first[kMaxBurst];
  Candidates(h, n, first);
  return LookupCandidates(keys, h, first, 0, n, now, res, pos);
}

void Conntrack::Candidates(const Hash* h, uint16_t n, uint32_t* first) const noexcept {
  if (n > kMaxBurst) n = kMaxBurst;
  // The record of reference `ref` (connection + 1) at base + ref * 64.
  const uintptr_t base = reinterpret_cast<uintptr_t>(conns_) - sizeof(Conn);
  index_.FirstCandidates(h, n, first, [base](uint32_t ref) {
    rte_prefetch0(reinterpret_cast<const void*>(base + uintptr_t(ref) * sizeof(Conn)));
  });
}

uint16_t Conntrack::LookupCandidates(const CtKey* keys, const Hash* h, const uint32_t* first,
                                     uint16_t from, uint16_t n, uint64_t now, CtResult* res,
                                     int32_t* pos) const noexcept {
  if (n > kMaxBurst) n = kMaxBurst;
  uint16_t missed = 0;
  for (uint16_t i = from; i < n; ++i) {
    // The usual packet: its connection is the first candidate.
    if (const uint32_t f = first[i]; f != 0) [[likely]] {
      const Conn& c = conns_[f - 1];
      const CtResult d = CtDirection(c.tuple, keys[i]);
      if (d != CtResult::kNew && c.expires.load(std::memory_order_relaxed) > now) [[likely]] {
        res[i] = d;
        pos[i] = int32_t(f - 1);
        continue;
      }
    }
    pos[i] = Find(keys[i], h[i], now, &res[i]);
    missed += pos[i] < 0;
  }
  return missed;
}

void Conntrack::Reserve(Reservation& r, uint16_t n) noexcept {
  if (n > std::size(r.ids)) n = std::size(r.ids);
  r.used = 0;
  r.n = uint16_t(rte_ring_mc_dequeue_burst_elem(free_, r.ids, sizeof(uint32_t), n, nullptr));
  for (uint16_t i = 0; i < r.n; ++i) __builtin_prefetch(&conns_[r.ids[i]], 1, 3);  // to write
}

void Conntrack::Release(Reservation& r) noexcept {
  if (r.used < r.n) {
    rte_ring_mp_enqueue_bulk_elem(free_, r.ids + r.used, sizeof(uint32_t), r.n - r.used, nullptr);
  }
  r.n = r.used = 0;
}

bool Conntrack::Create(const CtKey& key, uint8_t tcp_flags, uint64_t now, int32_t* pos,
                       const CtNat& nat, const Hash* hash, Reservation* reserved) noexcept {
  uint32_t ci;
  if (reserved != nullptr && reserved->used < reserved->n) {
    ci = reserved->ids[reserved->used++];
  } else if (rte_ring_mc_dequeue_elem(free_, &ci, sizeof(ci)) != 0) {
    return false;  // full
  }
  Conn& c = conns_[ci];
  uint8_t state = key.proto == 6 ? ((tcp_flags & kSynFlag) ? kSyn : kEstablished) : kOther;
  // The tuple around `aux`: the live flag may be read by the collector at
  // any time, so it is only ever written atomically.
  static_assert(offsetof(CtKey, aux) == 2 && offsetof(CtKey, sport) == 4);
  c.tuple.family = key.family;
  c.tuple.proto = key.proto;
  std::memcpy(reinterpret_cast<uint8_t*>(&c.tuple) + 4, reinterpret_cast<const uint8_t*>(&key) + 4,
              sizeof(CtKey) - 4);
  c.state().store(state, std::memory_order_relaxed);
  // A free record's NAT is none (Collect clears it before freeing): only a
  // translated connection writes it, the rest skip a store to a cold line.
  if (nat.kind != CtNat::kNone) nat_[ci] = nat;
  CacheVerdict(int32_t(ci), CtVerdict{});  // a reused record keeps no stale verdict
  c.expires.store(now + TimeoutFor(key.proto, state), std::memory_order_relaxed);
  c.live().store(1, std::memory_order_release);  // the collector may look at it from here
  // Published by the index reference (release): a reader that finds it
  // sees the record whole. If it cannot be inserted (no room within 32
  // buckets) the record is marked expired, absent to lookups, and the
  // collector frees it: workers never remove anything.
  if (!index_.Insert(hash != nullptr ? *hash : HashOf(key), Ref(ci))) {
    c.expires.store(0, std::memory_order_release);
    return false;
  }
  *pos = int32_t(ci);
  return true;
}

uint32_t Conntrack::Collect(uint64_t now, uint32_t budget) {
  // Fragment records first (their own cursor and budget).
  frag_sweep_.Sweep(budget, [&](int32_t p, const void* key, auto& del) {
    if (frags_[p].expires.load(std::memory_order_relaxed) > now) return false;
    FragKey k;
    std::memcpy(&k, key, sizeof(k));
    return del(&k);
  });
  // Records removed earlier whose grace period is over become free.
  while (!retired_.empty() &&
         (qsbr_ == nullptr || rte_rcu_qsbr_check(qsbr_, retired_.front().first, false) == 1)) {
    nat_[retired_.front().second] = CtNat{};  // no reader holds it any more
    rte_ring_mp_enqueue_elem(free_, &retired_.front().second, sizeof(uint32_t));
    retired_.pop_front();
  }
  uint32_t removed = 0;
  size_t first = retired_.size();
  for (uint32_t i = 0; i < budget && i < capacity_; ++i) {
    uint32_t ci = cursor_;
    cursor_ = cursor_ + 1 == capacity_ ? 0 : cursor_ + 1;
    Conn& c = conns_[ci];
    if (c.live().load(std::memory_order_acquire) == 0) continue;  // free, or being created
    if (c.expires.load(std::memory_order_relaxed) > now) continue;
    CtKey k = c.tuple;
    k.aux[0] = k.aux[1] = 0;
    // Its index key (missing after a failed Create). Readers may still
    // hold the record: it is reused after a grace period.
    index_.Remove(HashOf(k), Ref(ci));
    c.live().store(0, std::memory_order_relaxed);
    retired_.emplace_back(0, ci);
    ++removed;
  }
  if (retired_.size() > first) {  // one token for this step's removals, taken after them
    uint64_t token = qsbr_ != nullptr ? rte_rcu_qsbr_start(qsbr_) : 0;
    for (size_t i = first; i < retired_.size(); ++i) retired_[i].first = token;
  }
  return removed;
}

uint32_t Conntrack::size() const { return capacity_ - rte_ring_count(free_); }

}  // namespace meshgate::dataplane
