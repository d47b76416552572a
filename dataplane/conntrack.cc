#include "dataplane/conntrack.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {

enum TcpState : uint8_t { kSyn = 0, kEstablished = 1, kClosing = 2, kOther = 3 };
constexpr uint8_t kFin = 0x01, kSynFlag = 0x02, kRst = 0x04, kAck = 0x10;

uint8_t NextTcpState(uint8_t state, CtResult dir, uint8_t flags) {
  if (flags & (kFin | kRst)) return kClosing;
  if (state == kClosing) return kClosing;
  // A reply that acknowledges (SYN-ACK or later) establishes the connection;
  // mid-stream pickup (an ACK without SYN on a new entry) counts as established.
  if (dir == CtResult::kReply && (flags & kAck)) return kEstablished;
  if (state == kSyn && (flags & kAck) && !(flags & kSynFlag)) return kEstablished;
  return state;
}

}  // namespace

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
  std::unique_ptr<Conntrack> ct(new Conntrack());
  // Both directions of every connection are keys.
  auto h = SharedHashCreate("conntrack", capacity * 2, sizeof(CtKey));
  if (!h.ok()) return h.status();
  ct->h_ = *h;
  ct->qsbr_ = qsbr;
  ct->capacity_ = capacity;
  // Multi-writer adds keep per-lcore free-slot caches: positions can exceed
  // `capacity`; the entry array covers every position the hash can return.
  // Positions are key indexes - 1, below rte_hash_max_key_id (the key store
  // has max_key_id + 1 slots, the first a dummy): reading the key at
  // position max_key_id would read past the store.
  ct->slots_ = uint32_t(rte_hash_max_key_id(ct->h_));
  ct->sweep_.Init(ct->h_, qsbr);
  ct->entries_ = std::make_unique<Entry[]>(ct->slots_);
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
  if (h_ != nullptr) rte_hash_free(h_);
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

uint64_t Conntrack::TimeoutFor(uint8_t proto, uint8_t state) const {
  return proto == 6 ? timeout_tsc_[state] : timeout_tsc_[kOther];
}

void Conntrack::LookupBurst(const CtKey* keys, uint16_t n, uint64_t now, CtResult* res,
                            int32_t* pos) const noexcept {
  // One probe per packet: a connection is stored under its tuple (the slot
  // holds the connection) and its reversed tuple (the slot links to it).
  const void* kp[32];
  int32_t found[32];
  if (n > 32) n = 32;
  for (uint16_t i = 0; i < n; ++i) kp[i] = &keys[i];
  rte_hash_lookup_bulk(h_, kp, n, found);
  Prefetch(found, n);  // the entries' misses overlap instead of queueing
  for (uint16_t i = 0; i < n; ++i) {
    res[i] = CtResult::kNew;
    pos[i] = -1;
    int32_t p = found[i];
    if (p < 0) continue;
    uint32_t link = entries_[p].link.load(std::memory_order_acquire);
    int32_t e = link == 0 ? p : int32_t(link - 1);
    if (entries_[e].expires.load(std::memory_order_relaxed) <= now) continue;
    res[i] = link == 0 ? CtResult::kForward : CtResult::kReply;
    pos[i] = e;
  }
}

bool Conntrack::Create(const CtKey& key, uint8_t tcp_flags, uint64_t now, int32_t* pos,
                       const CtNat& nat) noexcept {
  // An existing (expired) connection keeps its slots.
  int32_t p = rte_hash_add_key(h_, &key);
  if (p < 0) return false;
  Entry& e = entries_[p];
  uint8_t state = key.proto == 6 ? ((tcp_flags & kSynFlag) ? kSyn : kEstablished) : kOther;
  e.link.store(0, std::memory_order_relaxed);
  e.nat = nat;
  CacheVerdict(p, CtVerdict{});  // a reused slot keeps no stale verdict
  e.proto.store(key.proto, std::memory_order_relaxed);
  e.state.store(state, std::memory_order_relaxed);
  CtKey rev = key.Reversed();
  int32_t r = rte_hash_add_key(h_, &rev);
  if (r < 0) {
    // Full: never half a connection. The entry stays expired (absent to
    // lookups) and the collector removes the forward key; workers never
    // delete keys, only control retires slots.
    e.expires.store(0, std::memory_order_relaxed);
    return false;
  }
  if (r != p) entries_[r].link.store(uint32_t(p) + 1, std::memory_order_release);
  e.expires.store(now + TimeoutFor(key.proto, state), std::memory_order_release);
  *pos = p;
  return true;
}

void Conntrack::Update(int32_t pos, CtResult dir, uint8_t tcp_flags, uint64_t now) noexcept {
  Entry& e = entries_[pos];
  uint8_t proto = e.proto.load(std::memory_order_relaxed);
  uint8_t state = e.state.load(std::memory_order_relaxed);
  if (proto == 6) {
    uint8_t next = NextTcpState(state, dir, tcp_flags);
    if (next != state) e.state.store(next, std::memory_order_relaxed);
    state = next;
  }
  // Several workers may refresh one entry: last writer wins, all write
  // "now + timeout" of about the same now (benign; see the design note).
  e.expires.store(now + TimeoutFor(proto, state), std::memory_order_relaxed);
}

CtVerdict Conntrack::Verdict(int32_t pos) const noexcept {
  CtVerdict v;
#if defined(__AVX__)
  __m128i x;
  // One 16-byte load that the compiler may neither split nor narrow.
  asm volatile("vmovdqa %1, %0" : "=x"(x) : "m"(entries_[pos].verdict));
  _mm_store_si128(reinterpret_cast<__m128i*>(&v), x);
#else
  (void)pos;
#endif
  return v;
}

void Conntrack::CacheVerdict(int32_t pos, const CtVerdict& v) noexcept {
#if defined(__AVX__)
  __m128i x = _mm_load_si128(reinterpret_cast<const __m128i*>(&v));
  asm volatile("vmovdqa %1, %0" : "=m"(entries_[pos].verdict) : "x"(x));
#else
  (void)pos;
  (void)v;
#endif
}

void Conntrack::Prefetch(const int32_t* pos, uint16_t n) const noexcept {
  for (uint16_t i = 0; i < n; ++i) {
    if (pos[i] >= 0) rte_prefetch0(&entries_[pos[i]]);
  }
}

uint32_t Conntrack::Collect(uint64_t now, uint32_t budget) {
  // Fragment records first (their own cursor and budget).
  frag_sweep_.Sweep(budget, [&](int32_t p, const void* key, auto& del) {
    if (frags_[p].expires.load(std::memory_order_relaxed) > now) return false;
    FragKey k;
    std::memcpy(&k, key, sizeof(k));
    return del(&k);
  });
  return sweep_.Sweep(budget, [&](int32_t p, const void* key, auto& del) {
    uint32_t link = entries_[p].link.load(std::memory_order_relaxed);
    int32_t e = link == 0 ? p : int32_t(link - 1);
    if (entries_[e].expires.load(std::memory_order_relaxed) > now) return false;
    CtKey k;
    std::memcpy(&k, key, sizeof(k));
    // Delete both directions together; readers may still hold either
    // position, so the slots are freed after a grace period.
    CtKey fwd = link != 0 ? k.Reversed() : k;
    CtKey rev = fwd.Reversed();
    del(&fwd);
    del(&rev);
    return true;
  });
}

uint32_t Conntrack::size() const { return uint32_t(rte_hash_count(h_)); }

}  // namespace meshgate::dataplane
