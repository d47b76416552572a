// Publication of immutable snapshots to worker lcores: one pointer, one
// atomic store, reclamation after an rte_rcu_qsbr grace period.
//
// Pattern from grout (build new, swap, rte_rcu_qsbr, free) and DPDK
// lib/rcu/rte_rcu_qsbr.h. Design note: docs/design/snapshots.md.
//
//  - Workers (readers) call Read() once per burst and Quiescent() at one fixed
//    point of their loop, when they hold no snapshot pointer.
//  - Control (the single writer) calls Publish() with a new snapshot: one
//    release store; the old one is retired with an RCU token.
//  - Control calls Reclaim() from its event loop (e.g. a periodic Asio timer):
//    it frees every retired snapshot whose token all online readers have
//    passed, without blocking (rte_rcu_qsbr_check with wait=false). No sleeps,
//    no time guesses: a stuck reader delays reclamation, never corrupts.
//
// Thread-safety: Read/Quiescent/Online/Offline from readers (each with its
// own id); Publish/Reclaim/pending from one writer thread only.
#pragma once

#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "identity/strutil.h"

namespace meshgate::dataplane {

template <typename T>
class RcuCell {
 public:
  using Reclaimer = std::function<void(const T*)>;  // control side only

  // `max_readers`: reader ids are 0..max_readers-1. `reclaim` frees a retired
  // snapshot (default: delete).
  static absl::StatusOr<std::unique_ptr<RcuCell>> Create(
      uint32_t max_readers, Reclaimer reclaim = [](const T* p) { delete p; }) {
    size_t sz = rte_rcu_qsbr_get_memsize(max_readers);
    auto* v = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc("mg_rcu", sz, RTE_CACHE_LINE_SIZE));
    if (v == nullptr) return absl::ResourceExhaustedError("RcuCell: no memory for QSBR");
    if (rte_rcu_qsbr_init(v, max_readers) != 0) {
      rte_free(v);
      return absl::InvalidArgumentError(meshgate::StrCat("RcuCell: bad max_readers ", max_readers));
    }
    return std::unique_ptr<RcuCell>(new RcuCell(v, max_readers, std::move(reclaim)));
  }

  ~RcuCell() {
    // Owner's contract: no reader runs any more. Free everything.
    for (auto& [token, p] : retired_) reclaim_(p);
    if (const T* cur = current_.load(std::memory_order_relaxed)) reclaim_(cur);
    rte_free(v_);
  }
  RcuCell(const RcuCell&) = delete;
  RcuCell& operator=(const RcuCell&) = delete;

  // --- readers ---
  absl::Status RegisterReader(uint32_t id) {
    if (id >= max_readers_ || rte_rcu_qsbr_thread_register(v_, id) != 0) {
      return absl::InvalidArgumentError(meshgate::StrCat("RcuCell: bad reader id ", id));
    }
    return absl::OkStatus();
  }
  void Online(uint32_t id) noexcept { rte_rcu_qsbr_thread_online(v_, id); }
  void Offline(uint32_t id) noexcept { rte_rcu_qsbr_thread_offline(v_, id); }
  // Once per burst. Valid until this reader's next Quiescent().
  const T* Read() const noexcept { return current_.load(std::memory_order_acquire); }
  // At one fixed point of the loop, holding no pointer from Read().
  void Quiescent(uint32_t id) noexcept { rte_rcu_qsbr_quiescent(v_, id); }

  // --- the writer ---
  // Publishes `next` (ownership passes to the cell); the previous snapshot is
  // retired until a grace period has passed.
  void Publish(std::unique_ptr<const T> next) {
    const T* old = current_.exchange(next.release(), std::memory_order_acq_rel);
    if (old != nullptr) retired_.emplace_back(rte_rcu_qsbr_start(v_), old);
  }
  // Frees retired snapshots whose grace period is over. Never blocks.
  // Returns how many were freed.
  size_t Reclaim() {
    size_t freed = 0;
    // Tokens grow monotonically: stop at the first one not yet passed.
    while (!retired_.empty() && rte_rcu_qsbr_check(v_, retired_.front().first, false) == 1) {
      reclaim_(retired_.front().second);
      retired_.pop_front();
      ++freed;
    }
    return freed;
  }
  size_t pending() const { return retired_.size(); }
  // The readers' QSBR variable, for other tables whose memory the same
  // readers may hold (e.g. conntrack key slots).
  rte_rcu_qsbr* qsbr() const { return v_; }
  const T* current_for_writer() const { return current_.load(std::memory_order_relaxed); }

 private:
  RcuCell(rte_rcu_qsbr* v, uint32_t max_readers, Reclaimer reclaim)
      : v_(v), max_readers_(max_readers), reclaim_(std::move(reclaim)) {}

  rte_rcu_qsbr* v_;
  uint32_t max_readers_;
  Reclaimer reclaim_;
  // dp: ro (acquire load, once per burst); cp: rw (acq_rel exchange).
  alignas(RTE_CACHE_LINE_SIZE) std::atomic<const T*> current_{nullptr};
  std::deque<std::pair<uint64_t, const T*>> retired_;  // cp only
};

}  // namespace meshgate::dataplane
