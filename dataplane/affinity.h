// Session affinity (Kubernetes sessionAffinity: ClientIP, as Cilium's
// lb affinity map): a client address keeps the backend it got for a
// service frontend until `timeout` passes without a new connection.
//
// Key: the client address and the service frontend (both stable across
// snapshots). Value: the backend's address and port and its position among
// the service's backends in the snapshot that chose it. A later snapshot
// checks the backend at that position still is that backend; if the
// backends moved it looks for it once (the new position is then stored); a
// backend that left the service loses its clients, as Cilium's affinity map
// keyed by backend ID does.
//
// Thread-safety: shared by the instance's workers (rte_hash lock-free
// readers, multi-writer adds); two workers refreshing one entry race
// benignly (last writer wins, both write a valid backend).
// Hot path: Find/Remember do no allocation, lock or syscall; when the table
// is full new clients get no affinity (counted), never a drop.
// Expired entries are removed by the control thread in small steps
// (Collect); their key slots are freed after an rte_rcu_qsbr grace period
// on the workers' QSBR, as conntrack's are.
#pragma once

#include <rte_hash.h>

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/hash_sweep.h"
#include "dataplane/service_table.h"

namespace meshgate::dataplane {

struct AffinityKey {
  uint8_t family = 0, pad[3] = {};
  uint8_t client[16] = {};
  ServiceKey frontend;
};
static_assert(sizeof(AffinityKey) == 40);

class AffinityTable {
 public:
  // `qsbr`: the workers' RCU variable (null: entries are never collected).
  static absl::StatusOr<std::unique_ptr<AffinityTable>> Create(uint32_t capacity,
                                                              rte_rcu_qsbr* qsbr = nullptr);
  ~AffinityTable();
  AffinityTable(const AffinityTable&) = delete;
  AffinityTable& operator=(const AffinityTable&) = delete;

  // The position in `table` of the backend remembered for `k`, if the entry
  // has not expired and the backend still serves the service; else -1.
  int32_t Find(const AffinityKey& k, const ServiceTable& table, int32_t svc, uint64_t now) const noexcept;
  // Remembers (or refreshes) `k` -> backend `b` (a position in the table).
  void Remember(const AffinityKey& k, const ServiceTable& table, int32_t svc, uint32_t b,
                uint64_t expires) noexcept;
  uint64_t full() const { return full_.load(std::memory_order_relaxed); }

  // --- control ---
  // Examines up to `budget` slots from where the last call stopped, deletes
  // expired entries and frees slots whose grace period has passed. Never
  // blocks. Returns the number of entries deleted.
  uint32_t Collect(uint64_t now_tsc, uint32_t budget);
  uint32_t size() const;  // occupied key slots, expired ones included
  uint32_t capacity() const { return capacity_; }

 private:
  struct Entry {
    std::atomic<uint64_t> expires{0};
    ServiceBackend backend;
    uint32_t index = 0;  // position among the service's backends
  };
  AffinityTable() = default;
  rte_hash* h_ = nullptr;
  std::unique_ptr<Entry[]> entries_;
  std::atomic<uint64_t> full_{0};
  uint32_t capacity_ = 0;
  HashSweeper sweep_;  // cp only
};

}  // namespace meshgate::dataplane
