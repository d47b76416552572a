// A per-lcore cache of ACL verdicts in front of rte_acl, keyed by the whole
// ACL key (protocol, subject class, peer class, port, direction) and the
// table that decided it.
//
// A verdict is a pure function of the table and the key: the key already
// holds the classes the identities map to, so an identity moving class
// changes the key, not the verdict of a key. An entry is valid only for the
// table it was filled from (AclTable::id(), unique per build in the process,
// never reused), so a new policy makes every entry stale at once without a
// sweep, and a snapshot that reuses its predecessor's table (same rules)
// keeps the cache warm. This is the role Cilium's per-endpoint policy map
// plays in its datapath (a hash lookup by identity, port and protocol,
// bpf/lib/policy.h): new connections between class pairs already seen skip
// the rte_acl trie walk, and misses go to it as before.
//
// Two-way set associative: a set is one 64-byte cache line of two 32-byte
// entries; a key that finds both ways taken replaces the older.
// Thread-safety: none; one per worker (Pipeline). Hot path: no allocation,
// no lock.
#pragma once

#include <rte_hash_crc.h>
#include <rte_prefetch.h>

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "classifier/acl_table.h"
#include "classifier/verdict.h"

namespace meshgate::classifier {

class VerdictCache {
 public:
  // Room for `entries` verdicts (rounded down to a power of two, at least
  // two); 0 turns the cache off.
  explicit VerdictCache(uint32_t entries) {
    if (entries < 2) return;
    uint32_t sets = 1;
    while (sets * 2 <= entries / 2) sets <<= 1;
    sets_ = std::make_unique<Set[]>(sets);
    mask_ = sets - 1;
  }
  bool enabled() const { return sets_ != nullptr; }
  size_t memory_bytes() const { return enabled() ? sizeof(Set) * (size_t(mask_) + 1) : 0; }

  // The set `k` belongs to (pass it to Prefetch, Find, Insert).
  uint32_t SetOf(const AclKey& k) const noexcept {
    uint64_t w[2];
    std::memcpy(w, &k, sizeof(w));
    return Crc8(w[1], Crc8(w[0], 0x2545f491u)) & mask_;
  }
  void Prefetch(uint32_t set) const noexcept { rte_prefetch0(&sets_[set]); }

  // The verdict `table` gave `k`, or null when this cache does not hold it.
  const PolicyResult* Find(const AclTable& table, uint32_t set, const AclKey& k) const noexcept {
    for (const Entry& e : sets_[set].way) {
      if (e.table == table.id() && std::memcmp(&e.key, &k, sizeof(k)) == 0) return &e.result;
    }
    return nullptr;
  }
  // The new verdict takes the first way; the one there moves to the second
  // (the least recently inserted is replaced).
  void Insert(const AclTable& table, uint32_t set, const AclKey& k,
              const PolicyResult& r) noexcept {
    Set& s = sets_[set];
    s.way[1] = s.way[0];
    s.way[0].key = k;
    s.way[0].table = table.id();
    s.way[0].result = r;
  }

 private:
  // CRC32-C by the instruction when built for it: rte_hash_crc_8byte tests
  // a global for the CPU's algorithm on every call.
  static uint32_t Crc8(uint64_t w, uint32_t init) noexcept {
#if defined(__SSE4_2__)
    return uint32_t(_mm_crc32_u64(init, w));
#else
    return rte_hash_crc_8byte(w, init);
#endif
  }

  struct Entry {
    AclKey key{};
    uint64_t table = 0;  // AclTable::id(); 0 (no table has it): empty
    PolicyResult result;
  };
  static_assert(sizeof(Entry) == 32);
  struct alignas(64) Set {  // one cache line: a lookup touches one line
    Entry way[2];
  };

  std::unique_ptr<Set[]> sets_;
  uint32_t mask_ = 0;
};

}  // namespace meshgate::classifier
