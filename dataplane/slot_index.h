// A lock-free hash index from keys to non-zero 32-bit references (slots of
// a record array the caller owns), shared by the conntrack (connections,
// one key each for both directions) and the ipcache (host routes).
//
// 64-byte buckets of eight {16-bit signature, reference} slots and an
// overflow count: a key whose home bucket is full goes to the next one and
// raises the home bucket's count; a lookup walks on only while the count is
// non-zero (at most 32 buckets). The index stores no keys: `Find` hands
// each reference whose signature matches to the caller, which compares its
// record's key (records are written before their reference is published).
// Sized for at most half the slots in use (mean 4 of 8 per bucket).
//
// Concurrency: readers take no lock. `Insert` claims a slot with one
// compare-and-swap (several writers may insert at once); `Remove` and
// `Replace` assume one remover (the control thread). A reader may see a
// reference before its signature (it misses a key being inserted) or a
// stale signature (its record compare fails); `Remove` clears the
// signature before the reference so that it never overwrites the signature
// of a writer that claimed the slot after it. A record is reused only
// after its references are gone and a grace period has passed (the
// caller's RCU): the index itself frees nothing. docs/design/conntrack.md.
#pragma once

#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "identity/strutil.h"
#if defined(__SSE2__) || defined(__SSE4_2__)
#include <immintrin.h>
#endif

namespace meshgate::dataplane {

class SlotIndex {
 public:
  struct Hash {
    uint32_t h;    // the home bucket: h & mask
    uint16_t sig;  // compared before any record is read
  };
  // From a 32-bit hash (CRC): the signature is the top of a multiplicative
  // mix, so keys sharing a bucket (low bits) still differ in it. (Two CRCs
  // with different seeds would not do: CRC is linear, they differ by a
  // constant.)
  static Hash Mix(uint32_t h) {
    return Hash{h, uint16_t((uint64_t(h) * 0x9e3779b97f4a7c15ull) >> 48)};
  }
  // CRC32-C steps, as rte_hash_crc_8byte / _4byte compute them. Built for a
  // CPU with SSE 4.2 (-march=native), the instruction itself: DPDK's
  // functions test a global for the CPU's algorithm on every call.
  static uint32_t Crc8(uint64_t w, uint32_t init) {
#if defined(__SSE4_2__)
    return uint32_t(_mm_crc32_u64(init, w));
#else
    return rte_hash_crc_8byte(w, init);
#endif
  }
  static uint32_t Crc4(uint32_t w, uint32_t init) {
#if defined(__SSE4_2__)
    return _mm_crc32_u32(init, w);
#else
    return rte_hash_crc_4byte(w, init);
#endif
  }

  SlotIndex() = default;
  SlotIndex(const SlotIndex&) = delete;
  SlotIndex& operator=(const SlotIndex&) = delete;
  ~SlotIndex() { rte_free(buckets_); }

  // Room for `keys` keys (EAL memory). `what` names the table in errors.
  absl::Status Init(uint32_t keys, std::string_view what) {
    uint32_t buckets = rte_align32pow2(std::max<uint32_t>(keys / 4, 2));
    buckets_ = static_cast<Bucket*>(
        rte_zmalloc_socket("mg_slot_index", sizeof(Bucket) * size_t(buckets), 64, SOCKET_ID_ANY));
    if (buckets_ == nullptr) {
      return absl::ResourceExhaustedError(meshgate::StrCat(
          what, ": cannot allocate ", (sizeof(Bucket) * uint64_t(buckets)) >> 20,
          " MiB of EAL memory for ", keys, " keys"));
    }
    mask_ = buckets - 1;
    max_probe_ = std::min<uint32_t>(buckets, 32);
    return absl::OkStatus();
  }
  size_t memory_bytes() const { return sizeof(Bucket) * (size_t(mask_) + 1); }

  // --- readers ---
  void Prefetch(Hash h) const noexcept { rte_prefetch0(&buckets_[h.h & mask_]); }
  // The first reference in the home bucket whose signature matches, or 0:
  // to prefetch its record before `Find`, and to try it first (the usual
  // key is the first match in its home bucket). A reference read earlier
  // may have been removed since: the caller compares its record's key (a
  // record is reused only after a grace period its read side spans).
  uint32_t FirstCandidate(Hash h) const noexcept { return FirstIn(buckets_[h.h & mask_], h.sig); }
  // FirstCandidate of `n` hashes into `first`, and `found(ref)` for each
  // one found (to fetch its record). The table's fields are read once:
  // each store to `first` could otherwise change them for the compiler.
  template <typename Found>
  void FirstCandidates(const Hash* h, uint32_t n, uint32_t* first, Found&& found) const noexcept {
    const Bucket* const buckets = buckets_;
    const uint32_t mask = mask_;
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t ref = FirstIn(buckets[h[i].h & mask], h[i].sig);
      first[i] = ref;
      if (ref != 0) found(ref);
    }
  }
  // The first reference `ref` with a matching signature for which
  // `match(ref)` holds, or 0.
  template <typename Match>
  uint32_t Find(Hash h, Match&& match) const noexcept {
    for (uint32_t p = 0; p < max_probe_; ++p) {
      const Bucket& b = buckets_[(h.h + p) & mask_];
      for (uint32_t m = Matches(b, h.sig); m != 0; m &= m - 1) {
        uint32_t ref = RefAt(b, m);
        if (ref != 0 && match(ref)) return ref;
      }
      if (__atomic_load_n(&b.overflow, __ATOMIC_ACQUIRE) == 0) break;
    }
    return 0;
  }

  // --- writers ---
  // Any thread. False when no slot is free within the probe limit.
  bool Insert(Hash h, uint32_t ref) noexcept {
    uint32_t p = 0;
    for (; p < max_probe_; ++p) {
      Bucket& b = buckets_[(h.h + p) & mask_];
      for (int i = 0; i < 8; ++i) {
        uint32_t expected = 0;
        if (__atomic_load_n(&b.ref[i], __ATOMIC_RELAXED) != 0 ||
            !__atomic_compare_exchange_n(&b.ref[i], &expected, ref, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED)) {
          continue;
        }
        __atomic_store_n(&b.sig[i], h.sig, __ATOMIC_RELEASE);
        return true;
      }
      __atomic_fetch_add(&b.overflow, 1, __ATOMIC_ACQ_REL);  // lookups go on past b
    }
    for (uint32_t q = 0; q < p; ++q) Overflow(h, q, -1);  // no room: undo the marks
    return false;
  }
  // One remover. False when `ref` is not indexed under `h`.
  bool Remove(Hash h, uint32_t ref) noexcept {
    return Walk(h, ref, [&](Bucket& b, int i, uint32_t p) {
      __atomic_store_n(&b.sig[i], uint16_t(0), __ATOMIC_RELAXED);
      __atomic_store_n(&b.ref[i], 0u, __ATOMIC_RELEASE);
      for (uint32_t q = 0; q < p; ++q) Overflow(h, q, -1);
    });
  }
  // One remover: points the slot holding `old_ref` at `new_ref` (one
  // release store; the key and so the signature are the same).
  bool Replace(Hash h, uint32_t old_ref, uint32_t new_ref) noexcept {
    return Walk(h, old_ref, [&](Bucket& b, int i, uint32_t) {
      __atomic_store_n(&b.ref[i], new_ref, __ATOMIC_RELEASE);
    });
  }

 private:
  struct alignas(64) Bucket {
    uint16_t sig[8];  // atomic stores; read as one vector
    uint32_t ref[8];  // 0: empty
    uint32_t overflow;
    uint32_t pad[3];
  };
  static_assert(sizeof(Bucket) == 64);

  // Lanes whose signature is `sig`: bit 2i for lane i (a byte mask of
  // 16-bit lanes; _pext_u32 would compact it but is microcoded on AMD Zen 2).
  static uint32_t Matches(const Bucket& b, uint16_t sig) {
#if defined(__SSE2__)
    __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
    return uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi16(v, _mm_set1_epi16(int16_t(sig))))) & 0x5555u;
#else
    uint32_t m = 0;
    for (int i = 0; i < 8; ++i) {
      m |= uint32_t(__atomic_load_n(&b.sig[i], __ATOMIC_RELAXED) == sig) << (2 * i);
    }
    return m;
#endif
  }
  // The reference in the lane of `m`'s lowest bit (2i for lane i): at
  // byte 2 * ctz(m) of `ref`, 4 bytes to a lane (no halving, no sign
  // extension).
  static uint32_t RefAt(const Bucket& b, uint32_t m) {
    static_assert(sizeof(b.ref[0]) == 4);
    const auto* at = reinterpret_cast<const uint8_t*>(b.ref) + 2 * uint32_t(__builtin_ctz(m));
    return __atomic_load_n(reinterpret_cast<const uint32_t*>(at), __ATOMIC_ACQUIRE);
  }
  static uint32_t FirstIn(const Bucket& b, uint16_t sig) {
    const uint32_t m = Matches(b, sig);
    return m == 0 ? 0 : RefAt(b, m);
  }
  void Overflow(Hash h, uint32_t p, int delta) noexcept {
    __atomic_fetch_add(&buckets_[(h.h + p) & mask_].overflow, uint32_t(delta), __ATOMIC_ACQ_REL);
  }
  template <typename Act>
  bool Walk(Hash h, uint32_t ref, Act&& act) noexcept {
    for (uint32_t p = 0; p < max_probe_; ++p) {
      Bucket& b = buckets_[(h.h + p) & mask_];
      for (int i = 0; i < 8; ++i) {
        if (__atomic_load_n(&b.ref[i], __ATOMIC_RELAXED) != ref) continue;
        act(b, i, p);
        return true;
      }
      if (__atomic_load_n(&b.overflow, __ATOMIC_ACQUIRE) == 0) break;
    }
    return false;
  }

  Bucket* buckets_ = nullptr;
  uint32_t mask_ = 0;
  uint32_t max_probe_ = 0;
};

}  // namespace meshgate::dataplane
