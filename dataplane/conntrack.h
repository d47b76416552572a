// Connection tracking: replies bypass policy, forward packets do not.
//
// Cilium (bpf/bpf_lxc.c; PR #2700, #3605): the policy is looked up for every
// packet; only CT_REPLY and CT_RELATED skip a deny. So this table answers one
// question per packet: is it a reply of a connection this instance allowed?
// Entries are created only for allowed (or audited) new connections.
//
// Timeouts are Cilium's defaults (pkg/option: bpf-ct-timeout-regular-tcp
// 8000 s, -tcp-syn 60 s, -tcp-fin 10 s, -any 60 s). Expiry is checked on
// lookup (an expired entry is as good as absent); removal is done by the
// control thread in small steps (Collect), never by a scan on the hot path.
//
// Each connection is indexed once, under a hash that is the same for its
// tuple and its reversal (HashOf), so a packet of either direction costs
// one probe and a new connection one bucket; the record's tuple tells the
// direction.
//
// Concurrency (docs/design/conntrack.md): a purpose-built table shared by
// all workers of an instance, so the two directions of a flow may be seen by
// different workers. Readers take no lock; creating a connection takes a
// free record from a lock-free ring and claims its index slot with one
// compare-and-swap. Only the control thread removes connections
// (Collect); a removed record is reused only after an rte_rcu_qsbr grace
// period on the workers' QSBR. The fragment table is an rte_hash with
// lock-free readers and multi-writer adds.
//
// REQUIRES: every thread that calls RecordFragment or Collect has an lcore
// id: an EAL lcore, or a thread registered with rte_thread_register().
// rte_hash's multi-writer adds index per-lcore free-slot caches by
// rte_lcore_id(), and an unregistered thread (LCORE_ID_ANY) crashes it.
#pragma once

#include <rte_hash.h>
#include <rte_ring.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/hash_sweep.h"
#include "dataplane/slot_index.h"
#if defined(__AVX__)
#include <immintrin.h>  // Verdict, CacheVerdict, CtDirection
#endif

namespace meshgate::dataplane {

// The forward tuple of a connection. Addresses in network order; IPv4 uses
// the first 4 bytes, the other 12 are 0 (CtDirection compares all 16).
// ICMP echo uses the identifier as both ports so that a reply's reversed
// tuple equals the request's.
struct CtKey {
  uint8_t family = 0;
  uint8_t proto = 0;
  // Not part of the tuple (never hashed or compared): 0 in keys; in the
  // table's records, the TCP state and the live flag.
  uint8_t aux[2] = {};
  uint16_t sport = 0, dport = 0;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};

  CtKey Reversed() const;
};
static_assert(sizeof(CtKey) == 40);

enum class CtResult : uint8_t {
  kNew = 0,     // no live entry
  kForward,     // a packet in the direction that created the entry
  kReply,       // a packet in the opposite direction
};

// Whether the record tuple `c` is `k` (kForward), its reversal (kReply),
// or neither (kNew); `aux` is not compared. Lookups ask it of each record
// whose index signature matches (both directions share one index key).
inline CtResult CtDirection(const CtKey& c, const CtKey& k) noexcept;  // below

// Address translation a connection carries (services). kReverse: replies
// get `addr:port` as their source (the service frontend); kPinned: the
// connection to a service frontend keeps its backend `addr:port`.
struct CtNat {
  enum Kind : uint8_t { kNone = 0, kReverse = 1, kPinned = 2 };
  Kind kind = kNone;
  uint8_t family = 0;
  uint16_t port = 0;  // host order
  uint8_t addr[16] = {};
};

// The policy outcome of a connection's forward packets, cached in its entry
// so that an established packet skips the destination LPM, the class
// lookups and the ACL (and, to a local endpoint, the route itself) while
// nothing they depend on has changed. Valid only
// under the same class-table epoch (the snapshot: policy, endpoints,
// identity classes) and ipcache version it was decided under, for the same
// source identity, and the same egress check (docs/design/conntrack.md,
// "verdict cache"). Drops are never cached: a dropped packet is classified
// again. 16 bytes, read and written with one aligned 16-byte access.
struct alignas(16) CtVerdict {
  uint32_t epoch = 0;    // IdentityClassTable::epoch(); 0: nothing cached
  uint32_t ipcache = 0;  // IpcacheTable::version()
  uint32_t nh = 0;       // the destination's ipcache slot
  uint32_t bits = 0;     // source identity (25 bits) | Local(endpoint) | kEgress | kAudit

  static constexpr uint32_t kIdentityMask = (1u << 25) - 1;
  static constexpr uint32_t kEgress = 1u << 30;   // the egress policy was checked
  static constexpr uint32_t kAudit = 1u << 31;    // the verdict was AUDIT (else FORWARDED)
  // The local endpoint the route at `nh` leads to (EndpointOf: its index in
  // the snapshot's endpoints), + 1, in bits 25-29; 0 when the route leads
  // elsewhere (or to an endpoint from 31 on: the route is taken again). It
  // stands with the rest: the route is the ipcache's (its version), the
  // endpoints are the snapshot's (the class epoch).
  static constexpr uint32_t kLocalShift = 25, kLocalMask = 31u << kLocalShift;
  static uint32_t Local(uint16_t endpoint) {
    return endpoint < 31 ? uint32_t(endpoint + 1) << kLocalShift : 0u;
  }
  // The cached local endpoint + 1, or 0.
  uint32_t local() const { return (bits & kLocalMask) >> kLocalShift; }

  // The first 8 bytes of a record cached under `epoch` and `ipcache`.
  static uint64_t Stamp(uint32_t epoch, uint32_t ipcache) {
    return uint64_t(epoch) | uint64_t(ipcache) << 32;
  }
  // Whether `v` stands for a packet of `identity` under `stamp`, with the
  // egress policy checked or not (`egress`). (An identity wider than the
  // mask is never cached: VerdictToCache stores it masked.)
  static bool Stands(const CtVerdict& v, uint64_t stamp, uint32_t identity, bool egress) {
    uint64_t head;
    std::memcpy(&head, &v, 8);
    return head == stamp && identity <= kIdentityMask &&
           (v.bits & (kIdentityMask | kEgress)) == (identity | (egress ? kEgress : 0u));
  }
};
static_assert(sizeof(CtVerdict) == 16);

// CtVerdict::Stands for the packets of one burst: the stamp and the egress
// check set once; each verdict compared with its packet's expected record
// (epoch, ipcache version, identity and the egress bit) as one 16-byte
// vector under a mask (the route's slot, its local endpoint and kAudit not
// compared: they are what the record tells).
class VerdictTest {
 public:
  VerdictTest(uint64_t stamp, bool egress) : stamp_(stamp), egress_(egress ? CtVerdict::kEgress : 0u) {
#if defined(__AVX__)
    base_ = _mm_set_epi64x(0, int64_t(stamp));
    mask_ = _mm_set_epi32(int32_t(CtVerdict::kIdentityMask | CtVerdict::kEgress), 0, -1, -1);
#endif
  }
  bool operator()(const CtVerdict& v, uint32_t identity) const {
#if defined(__AVX__)
    if (identity > CtVerdict::kIdentityMask) return false;
    const __m128i want = _mm_insert_epi32(base_, int32_t(identity | egress_), 3);
    const __m128i got = _mm_load_si128(reinterpret_cast<const __m128i*>(&v));
    return _mm_testz_si128(_mm_xor_si128(got, want), mask_);
#else
    return CtVerdict::Stands(v, stamp_, identity, egress_ != 0);
#endif
  }
  // The same test for packets that all carry one identity (an endpoint's
  // leading frames), its comparand built once: a loop keeps it in
  // registers. REQUIRES: identity <= CtVerdict::kIdentityMask (no record
  // stands for a wider one: the caller tests that once).
  class ForIdentity {
   public:
    bool operator()(const CtVerdict& v) const {
#if defined(__AVX__)
      const __m128i got = _mm_load_si128(reinterpret_cast<const __m128i*>(&v));
      return _mm_testz_si128(_mm_xor_si128(got, want_), mask_);
#else
      return CtVerdict::Stands(v, stamp_, identity_, egress_);
#endif
    }

   private:
    friend class VerdictTest;
#if defined(__AVX__)
    __m128i want_, mask_;
#else
    uint64_t stamp_ = 0;
    uint32_t identity_ = 0;
    bool egress_ = false;
#endif
  };
  ForIdentity For(uint32_t identity) const {
    ForIdentity f;
#if defined(__AVX__)
    f.want_ = _mm_insert_epi32(base_, int32_t(identity | egress_), 3);
    f.mask_ = mask_;
#else
    f.stamp_ = stamp_;
    f.identity_ = identity;
    f.egress_ = egress_ != 0;
#endif
    return f;
  }

 private:
  uint64_t stamp_;
  uint32_t egress_;
#if defined(__AVX__)
  __m128i base_, mask_;
#endif
};

// A fragmented datagram: Cilium's fragment map key (bpf/lib/ipv4.h
// ipv4_frag_id: addresses, IP id, protocol). The IPv6 id is the fragment
// header's 32-bit identification. Addresses in network order.
struct FragKey {
  uint8_t family = 0, proto = 0;
  uint16_t pad = 0;
  uint32_t id = 0;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
};
static_assert(sizeof(FragKey) == 40);

struct CtTimeouts {
  uint32_t tcp_syn_s = 60, tcp_established_s = 8000, tcp_close_s = 10, other_s = 60;
  uint32_t fragment_s = 30;  // a datagram's ports, kept for its later fragments
};

class Conntrack {
 public:
  // `capacity` connections. `qsbr` is the workers' RCU variable (they report
  // quiescence on it once per loop), used to reuse removed records safely.
  static absl::StatusOr<std::unique_ptr<Conntrack>> Create(uint32_t capacity, rte_rcu_qsbr* qsbr,
                                                           CtTimeouts t = {});
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // --- workers ---
  // The index hash of a tuple, the same for its reversal: the family,
  // protocol and the two (address, port) ends in a canonical order (the
  // lower end first; 16 bytes for IPv4, 40 for IPv6; `aux` is not hashed)
  // as 8-byte words, each multiplied by a random odd word of this table's
  // key, summed (mod 2^64), then CRC32 of that. Keyed so that tuples
  // chosen to collide cannot be computed from outside: CRC alone is
  // linear, and senders who choose their addresses and ports could fill
  // one run of buckets (new connections there failing with 155), which
  // Cilium's kernel maps prevent with a random seed. (Not a proven
  // universal family: NH, which is, cost 17 more instructions per packet
  // than the unkeyed CRC, this 1; docs/design/conntrack.md.) A worker
  // computes it and fetches its home bucket as it builds each key, then
  // looks the burst up.
  SlotIndex::Hash HashOf(const CtKey& k) const noexcept;
  SlotIndex::Hash HashOf4(uint64_t head, uint32_t src, uint32_t dst) const noexcept;
  void Prefetch(SlotIndex::Hash h) const noexcept { index_.Prefetch(h); }
  // The most packets one burst call handles (LookupBurst, LookupHashed,
  // Reserve): more are cut off, so a caller's burst must fit.
  static constexpr uint16_t kMaxBurst = 32;
  // Looks up `n` (<= kMaxBurst) packets; for each, `pos` gets the entry (or -1).
  void LookupBurst(const CtKey* keys, uint16_t n, uint64_t now_tsc, CtResult* res,
                   int32_t* pos) const noexcept;
  // The same for keys whose hashes `h` (HashOf) the caller has computed and
  // whose buckets it has prefetched. Returns how many were not found.
  uint16_t LookupHashed(const CtKey* keys, const SlotIndex::Hash* h, uint16_t n, uint64_t now_tsc,
                        CtResult* res, int32_t* pos) const noexcept;
  // LookupHashed in halves, for a caller that takes the usual packet as it
  // handles it. Candidates: each key's first candidate (the first
  // signature match in its home bucket; 0: none), its record fetched.
  // ForwardCandidate: whether `k` is the forward tuple of `first`'s record,
  // live; then `*pos` is the connection's position and `*v` its cached
  // verdict (as Verdict(pos), read from the record just compared). No for
  // any other packet (a reply, a miss, a connection further on), which
  // LookupCandidates then looks up as LookupHashed would, for the keys
  // from `from` to `n` (<= kMaxBurst). It returns how many were not found.
  void Candidates(const SlotIndex::Hash* h, uint16_t n, uint32_t* first) const noexcept;
  bool ForwardCandidate(uint32_t first, const CtKey& k, uint64_t now_tsc, int32_t* pos,
                        CtVerdict* v) const noexcept;
  uint16_t LookupCandidates(const CtKey* keys, const SlotIndex::Hash* h, const uint32_t* first,
                            uint16_t from, uint16_t n, uint64_t now_tsc, CtResult* res,
                            int32_t* pos) const noexcept;
  // Creates the entry of an allowed new connection (a new record even when
  // an expired one holds the tuple: lookups skip it, the collector removes
  // it). False when the table is full (the caller drops with Cilium's 155,
  // CT_MAP_INSERTION_FAILED).
  // `hash`: HashOf(key) as the caller computed it for the lookup, or null
  // (hashed here).
  // `reserved`: records taken for this burst (Reserve); the next one is
  // used, or, when none is left, one is taken from the free list.
  struct Reservation;
  bool Create(const CtKey& key, uint8_t tcp_flags, uint64_t now_tsc, int32_t* pos,
              const CtNat& nat = {}, const SlotIndex::Hash* hash = nullptr,
              Reservation* reserved = nullptr) noexcept;
  // Records for a burst's new connections, taken from the free list in one
  // step (one atomic operation for the burst instead of one per
  // connection) and fetched while the burst's policy is decided. Reserve
  // takes up to `n` (fewer when the table is nearly full: Create then
  // tries the free list itself), Create uses them in turn, Release gives
  // back the ones left. A worker holds them for one burst; near a full
  // table another worker may find none free meanwhile (155), as it may
  // when this worker's connections take the last ones.
  struct Reservation {
    uint32_t ids[kMaxBurst];
    uint16_t n = 0, used = 0;
  };
  void Reserve(Reservation& r, uint16_t n) noexcept;
  void Release(Reservation& r) noexcept;
  // The NAT state of the connection at `pos` (from LookupBurst or Create).
  const CtNat& Nat(int32_t pos) const noexcept { return nat_[pos]; }
  // Refreshes an entry with a packet seen in `dir` (TCP state and timeout).
  void Update(int32_t pos, CtResult dir, uint8_t tcp_flags, uint64_t now_tsc) noexcept;
  // Update for a forward packet, with the expiry of a connection other than
  // TCP computed once for a burst (`other_expires`: OtherExpiry(now_tsc)).
  uint64_t OtherExpiry(uint64_t now_tsc) const noexcept { return now_tsc + timeout_tsc_[kOther]; }
  void UpdateForward(int32_t pos, uint8_t tcp_flags, uint64_t now_tsc,
                     uint64_t other_expires) noexcept;
  // The verdict cached in the connection at `pos`, and caching one. Workers
  // may race on one entry: each access is a single 16-byte load or store
  // (atomic on x86 CPUs with AVX: Intel SDM vol. 3A 9.1.1; AMD APM vol. 1
  // 3.9.1.3), so a reader sees one writer's whole record or another's.
  // Without AVX the cache is off (Verdict returns an empty record).
  CtVerdict Verdict(int32_t pos) const noexcept;
  void CacheVerdict(int32_t pos, const CtVerdict& v) noexcept;
  // Fragments (Cilium's enable-ipv4-fragment-tracking, on by default): the
  // first fragment of a datagram records its L4 ports; later fragments,
  // which carry none, take them from here and are then tracked and
  // classified like any packet of their connection. False when the table
  // is full (RecordFragment; counted by the caller) or the first fragment
  // was not seen (FindFragment: Cilium's 175, FRAG_NOT_FOUND).
  bool RecordFragment(const FragKey& k, uint16_t sport, uint16_t dport, uint64_t now_tsc) noexcept;
  bool FindFragment(const FragKey& k, uint64_t now_tsc, uint16_t* sport, uint16_t* dport) const noexcept;
  uint32_t fragments() const;  // datagrams recorded (expired ones until collected)


  // --- control ---
  // Examines up to `budget` connection records from where the last call
  // stopped, removes expired connections, and frees records whose grace
  // period has passed. Never blocks. Returns the number of connections
  // removed.
  uint32_t Collect(uint64_t now_tsc, uint32_t budget);
  // Connection records in use, counting expired connections and removed
  // ones whose records wait for a grace period (and a burst's reserved
  // ones).
  uint32_t size() const;
  uint32_t capacity() const { return capacity_; }

 private:
  // One connection: its forward tuple, TCP state, expiry and cached verdict
  // in one cache line, so an established packet touches its bucket and this
  // line only. The tuple is written before the connection is published (its
  // references in the buckets, release) and is then read-only until the
  // connection is retired and its grace period has passed.
  struct alignas(64) Conn {
    CtKey tuple;  // aux[0]: TcpState (dp: rw, relaxed); aux[1]: live (1 from
                  // Create to retirement; cp: acquire); both via atomic_ref
    std::atomic<uint64_t> expires;  // tsc; dp: rw (relaxed, release when created)
    CtVerdict verdict;              // 16-byte accesses only (Verdict/CacheVerdict)
    std::atomic_ref<uint8_t> state() { return std::atomic_ref<uint8_t>(tuple.aux[0]); }
    std::atomic_ref<uint8_t> live() { return std::atomic_ref<uint8_t>(tuple.aux[1]); }
  };
  static_assert(sizeof(Conn) == 64);
  // The index (slot_index.h): references are connection + 1.
  using Hash = SlotIndex::Hash;
  static uint32_t Ref(uint32_t conn) { return conn + 1; }
  // The live connection whose forward (or reversed) tuple is `k`, or -1:
  // a walk of every candidate (LookupHashed tries the first one itself).
  int32_t Find(const CtKey& k, Hash h, uint64_t now, CtResult* res) const noexcept;
  Conntrack() = default;
  enum TcpState : uint8_t { kSyn = 0, kEstablished = 1, kClosing = 2, kOther = 3 };
  static constexpr uint8_t kFin = 0x01, kSynFlag = 0x02, kRst = 0x04, kAck = 0x10;
  static uint8_t NextTcpState(uint8_t state, CtResult dir, uint8_t flags);
  uint64_t TimeoutFor(uint8_t proto, uint8_t state) const;

  rte_rcu_qsbr* qsbr_ = nullptr;
  uint64_t hash_key_[5] = {};  // random per table (HashOf)
  uint32_t capacity_ = 0;
  Conn* conns_ = nullptr;             // capacity_, rte_malloc'ed (hugepages)
  SlotIndex index_;                   // every connection, once (HashOf)
  std::unique_ptr<CtNat[]> nat_;      // capacity_; read on replies and services only;
                                      // none in free records (cleared when freed)
  rte_ring* free_ = nullptr;          // free connection indexes (MP/MC)
  uint64_t tsc_hz_ = 0;
  uint64_t timeout_tsc_[4] = {};  // syn, established, close, other
  uint32_t cursor_ = 0;                               // cp only
  std::deque<std::pair<uint64_t, uint32_t>> retired_;  // cp only: (token, connection)

  struct FragEntry {
    std::atomic<uint64_t> expires{0};  // written last (release)
    uint16_t sport = 0, dport = 0;
  };
  rte_hash* frag_h_ = nullptr;
  std::unique_ptr<FragEntry[]> frags_;
  uint64_t frag_timeout_tsc_ = 0;
  HashSweeper frag_sweep_;  // cp only
};

// --- per packet: inline, the worker calls them for every tracked packet ---

// `head`: the key's first 8 bytes (family, protocol, `aux` 0, ports in
// host order); addresses in network order (as they lie in the header): the
// same hash as HashOf of the CtKey they make. The two ends (address << 16 |
// port, 48 bits each) go lower first, the lower one's top 16 bits carrying
// family and protocol, each times its key word: a reply hashes as its
// request.
[[gnu::always_inline]] inline SlotIndex::Hash Conntrack::HashOf4(uint64_t head, uint32_t src,
                                                                 uint32_t dst) const noexcept {
  const uint64_t a = uint64_t(src) << 16 | ((head >> 32) & 0xffff);
  const uint64_t b = uint64_t(dst) << 16 | (head >> 48);
  const uint64_t lo = a < b ? a : b, hi = a ^ b ^ lo;
  const uint64_t x = (lo | (head & 0xffff) << 48) * hash_key_[0] + hi * hash_key_[1];
  return SlotIndex::Mix(SlotIndex::Crc8(x, 0x9e3779b9u));
}

[[gnu::always_inline]] inline SlotIndex::Hash Conntrack::HashOf(const CtKey& k) const noexcept {
  // Each word loaded where it lies (a copy of the whole key first cost
  // six more instructions per lookup).
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&k);
  constexpr uint64_t kNoAux = ~(uint64_t(0xffff) << 16);
  uint64_t w;
  std::memcpy(&w, p, 8);
  if (k.family == 4) {
    uint32_t s4, d4;
    std::memcpy(&s4, k.src, 4);
    std::memcpy(&d4, k.dst, 4);
    return HashOf4(w & kNoAux, s4, d4);
  }
  // IPv6: the ends ordered by address (as two words), then port.
  uint64_t s[2], d[2];
  std::memcpy(s, k.src, 16);
  std::memcpy(d, k.dst, 16);
  const bool swap = s[0] != d[0] ? s[0] > d[0] : s[1] != d[1] ? s[1] > d[1] : k.sport > k.dport;
  const uint64_t* lo = swap ? d : s;
  const uint64_t* hi = swap ? s : d;
  const uint64_t ports = swap ? uint64_t(k.dport) | uint64_t(k.sport) << 16
                              : uint64_t(k.sport) | uint64_t(k.dport) << 16;
  const uint64_t x = ((w & 0xffff) | ports << 32) * hash_key_[0] + lo[0] * hash_key_[1] +
                     lo[1] * hash_key_[2] + hi[0] * hash_key_[3] + hi[1] * hash_key_[4];
  return SlotIndex::Mix(SlotIndex::Crc8(x, 0x9e3779b9u));
}

// CtDirection over 8-byte words: the first 8 bytes of the key as one word
// (family, protocol, `aux`, ports), the addresses as four (an IPv4 key's
// unused bytes are 0, so they compare equal). The forward test compares
// them in place, the reverse with the ports and the two addresses
// crossed. CtDirection is this on CPUs without AVX2 (tests compare both).
inline CtResult CtDirectionWords(const CtKey& c, const CtKey& k) noexcept {
  static_assert(offsetof(CtKey, sport) == 4 && offsetof(CtKey, src) == 8 &&
                offsetof(CtKey, dst) == 24 && sizeof(CtKey) == 40);
  constexpr uint64_t kNoAux = ~(uint64_t(0xffff) << 16);
  const auto* cp = reinterpret_cast<const uint8_t*>(&c);
  const auto* kp = reinterpret_cast<const uint8_t*>(&k);
  uint64_t ch, kh, cw[4], kw[4];
  std::memcpy(&ch, cp, 8);
  std::memcpy(&kh, kp, 8);
  std::memcpy(cw, cp + 8, 32);
  std::memcpy(kw, kp + 8, 32);
  if (((ch ^ kh) & kNoAux) == 0 &&
      ((cw[0] ^ kw[0]) | (cw[1] ^ kw[1]) | (cw[2] ^ kw[2]) | (cw[3] ^ kw[3])) == 0) {
    return CtResult::kForward;
  }
  const uint64_t crossed = (kh & 0xffff) | (kh >> 48) << 32 | ((kh >> 32) & 0xffff) << 48;
  if (((ch ^ crossed) & kNoAux) == 0 &&
      ((cw[0] ^ kw[2]) | (cw[1] ^ kw[3]) | (cw[2] ^ kw[0]) | (cw[3] ^ kw[1])) == 0) {
    return CtResult::kReply;
  }
  return CtResult::kNew;
}

[[gnu::always_inline]] inline CtResult CtDirection(const CtKey& c, const CtKey& k) noexcept {
#if defined(__AVX2__)
  // CtDirectionWords with the addresses as one 32-byte vector: the reverse
  // test swaps its halves.
  constexpr uint64_t kNoAux = ~(uint64_t(0xffff) << 16);
  const auto* cp = reinterpret_cast<const uint8_t*>(&c);
  const auto* kp = reinterpret_cast<const uint8_t*>(&k);
  uint64_t ch, kh;
  std::memcpy(&ch, cp, 8);
  std::memcpy(&kh, kp, 8);
  const __m256i ca = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + 8));
  const __m256i ka = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kp + 8));
  const __m256i fwd = _mm256_xor_si256(ca, ka);
  if (((ch ^ kh) & kNoAux) == 0 && _mm256_testz_si256(fwd, fwd)) [[likely]] {
    return CtResult::kForward;
  }
  const uint64_t crossed = (kh & 0xffff) | (kh >> 48) << 32 | ((kh >> 32) & 0xffff) << 48;
  const __m256i rev = _mm256_xor_si256(ca, _mm256_permute4x64_epi64(ka, 0x4e));  // dst, src
  if (((ch ^ crossed) & kNoAux) == 0 && _mm256_testz_si256(rev, rev)) return CtResult::kReply;
  return CtResult::kNew;
#else
  return CtDirectionWords(c, k);
#endif
}

// Whether `k` is `c` itself, `aux` aside (the reverse test folds away).
[[gnu::always_inline]] inline bool CtSameTuple(const CtKey& c, const CtKey& k) noexcept {
  return CtDirection(c, k) == CtResult::kForward;
}

inline uint8_t Conntrack::NextTcpState(uint8_t state, CtResult dir, uint8_t flags) {
  if (flags & (kFin | kRst)) return kClosing;
  if (state == kClosing) return kClosing;
  // A reply that acknowledges (SYN-ACK or later) establishes the connection;
  // mid-stream pickup (an ACK without SYN on a new entry) counts as established.
  if (dir == CtResult::kReply && (flags & kAck)) return kEstablished;
  if (state == kSyn && (flags & kAck) && !(flags & kSynFlag)) return kEstablished;
  return state;
}

inline uint64_t Conntrack::TimeoutFor(uint8_t proto, uint8_t state) const {
  return proto == 6 ? timeout_tsc_[state] : timeout_tsc_[kOther];
}

inline void Conntrack::Update(int32_t pos, CtResult dir, uint8_t tcp_flags, uint64_t now) noexcept {
  Conn& c = conns_[pos];
  uint8_t state = c.state().load(std::memory_order_relaxed);
  if (c.tuple.proto == 6) {
    uint8_t next = NextTcpState(state, dir, tcp_flags);
    if (next != state) c.state().store(next, std::memory_order_relaxed);
    state = next;
  }
  // Several workers may refresh one entry: last writer wins, all write
  // "now + timeout" of about the same now (benign; see the design note).
  c.expires.store(now + TimeoutFor(c.tuple.proto, state), std::memory_order_relaxed);
}

inline void Conntrack::UpdateForward(int32_t pos, uint8_t tcp_flags, uint64_t now,
                                     uint64_t other_expires) noexcept {
  Conn& c = conns_[pos];
  if (c.tuple.proto == 6) return Update(pos, CtResult::kForward, tcp_flags, now);
  c.expires.store(other_expires, std::memory_order_relaxed);
}

namespace ct_internal {
[[gnu::always_inline]] inline CtVerdict LoadVerdict(const CtVerdict& from) noexcept {
  CtVerdict v;
#if defined(__AVX__)
  __m128i x;
  // One 16-byte load that the compiler may neither split nor narrow.
  asm volatile("vmovdqa %1, %0" : "=x"(x) : "m"(from));
  _mm_store_si128(reinterpret_cast<__m128i*>(&v), x);
#else
  (void)from;
#endif
  return v;
}
}  // namespace ct_internal

[[gnu::always_inline]] inline bool Conntrack::ForwardCandidate(uint32_t first, const CtKey& k,
                                                               uint64_t now, int32_t* pos,
                                                               CtVerdict* v) const noexcept {
  if (first == 0) return false;
  const Conn& c = conns_[first - 1];
  if (!CtSameTuple(c.tuple, k) || c.expires.load(std::memory_order_relaxed) <= now) return false;
  *v = ct_internal::LoadVerdict(c.verdict);
  *pos = int32_t(first - 1);
  return true;
}

inline CtVerdict Conntrack::Verdict(int32_t pos) const noexcept {
  return ct_internal::LoadVerdict(conns_[pos].verdict);
}

inline void Conntrack::CacheVerdict(int32_t pos, const CtVerdict& v) noexcept {
#if defined(__AVX__)
  __m128i x = _mm_load_si128(reinterpret_cast<const __m128i*>(&v));
  asm volatile("vmovdqa %1, %0" : "=m"(conns_[pos].verdict) : "x"(x));
#else
  (void)pos;
  (void)v;
#endif
}

}  // namespace meshgate::dataplane
