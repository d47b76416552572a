// The shared lock-free rte_hash tables of an instance (conntrack fragments,
// session affinity): creating one (SharedHashCreate), and removing expired
// keys from it from the control thread in bounded steps
// (HashSweeper).
//
// With RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF rte_hash does not free a
// deleted key's slot (a reader may still hold its position): the sweeper
// records (rte_rcu_qsbr_start token, position) and frees the slot with
// rte_hash_free_key_with_position once every online worker has reported
// quiescence after that token. Positions are key indexes - 1, below
// rte_hash_max_key_id (reading the key at max_key_id would read past the
// key store). Used by the conntrack's fragment records and the
// affinity table (docs/design/conntrack.md, "Collection").
//
// Thread-safety: control thread only; the thread needs an lcore id
// (rte_hash multi-writer free-slot caches are per lcore).
#pragma once

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "identity/strutil.h"

namespace meshgate::dataplane {

// An rte_hash with lock-free readers and multi-writer adds (any worker may
// add, any may read), a process-unique name. `what` names it in errors.
// Hashed with jhash under a random seed, as the kernel's hash maps are
// (Cilium's fragment and affinity maps): their keys come from packets, and
// with an unseeded (or CRC, linear whatever its seed) hash a sender could
// compute keys that share buckets and fill them.
inline absl::StatusOr<rte_hash*> SharedHashCreate(std::string_view what, uint32_t entries,
                                                  uint32_t key_len) {
  static std::atomic<uint32_t> seq{0};
  std::string name = meshgate::StrCat("mgh", seq.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = entries;
  p.key_len = key_len;
  p.hash_func = rte_jhash;
  p.hash_func_init_val = std::random_device{}();
  p.socket_id = SOCKET_ID_ANY;
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
  rte_hash* h = rte_hash_create(&p);
  if (h == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat(what, ": rte_hash_create(", entries, "): ", rte_strerror(rte_errno)));
  }
  return h;
}

class HashSweeper {
 public:
  void Init(rte_hash* h, rte_rcu_qsbr* qsbr) {
    h_ = h;
    qsbr_ = qsbr;
    slots_ = uint32_t(rte_hash_max_key_id(h));
  }
  uint32_t slots() const { return slots_; }

  // Frees retired slots whose grace period is over, then visits up to
  // `budget` occupied-or-free slots from where the last call stopped. For
  // each occupied one, `visit(position, key, del)` decides; it calls
  // `del(key)` for every key to delete (retired under one token) and
  // returns true when it deleted something. Returns the number of true.
  template <typename Visit>
  uint32_t Sweep(uint32_t budget, Visit&& visit) {
    if (h_ == nullptr || qsbr_ == nullptr) return 0;
    while (!retired_.empty() && rte_rcu_qsbr_check(qsbr_, retired_.front().first, false) == 1) {
      rte_hash_free_key_with_position(h_, retired_.front().second);
      retired_.pop_front();
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < budget && slots_ > 0; ++i) {
      int32_t p = int32_t(cursor_);
      cursor_ = (cursor_ + 1) % slots_;
      void* key = nullptr;
      if (rte_hash_get_key_with_position(h_, p, &key) != 0) continue;  // free slot
      bool started = false;
      uint64_t token = 0;
      auto del = [&](const void* k) {
        if (!started) {
          token = rte_rcu_qsbr_start(qsbr_);
          started = true;
        }
        int32_t dp = rte_hash_del_key(h_, k);
        if (dp >= 0) retired_.emplace_back(token, dp);
        return dp >= 0;
      };
      if (visit(p, static_cast<const void*>(key), del)) ++n;
    }
    return n;
  }

 private:
  rte_hash* h_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  uint32_t slots_ = 0;
  uint32_t cursor_ = 0;
  std::deque<std::pair<uint64_t, int32_t>> retired_;  // (token, position)
};

}  // namespace meshgate::dataplane
