// Flow events: the policy verdict of each new connection and every drop,
// with Hubble's fields (api/v1/flow/flow.proto Flow: time, verdict,
// drop_reason_desc, IP, l4, source/destination identity, traffic_direction,
// is_reply), handed to the control thread through an rte_ring.
//
// Workers (many producers) enqueue a burst's events at once; control (one
// consumer) dequeues. A full ring is counted (events_lost) and never blocks a
// worker. Events are POD, fixed size, no pointers.
#pragma once

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace meshgate::dataplane {

enum class TrafficDirection : uint8_t { kUnknown = 0, kIngress = 1, kEgress = 2 };

struct FlowEvent {
  uint64_t tsc = 0;        // rte_rdtsc at the decision
  uint8_t verdict = 0;     // classifier::Verdict (FORWARDED, DROPPED, AUDIT)
  uint8_t drop_reason = 0; // DropReason (0 when forwarded)
  uint8_t family = 0;      // 4 or 6; 0 if the packet did not parse that far
  uint8_t proto = 0;
  uint8_t direction = 0;   // TrafficDirection
  uint8_t is_reply = 0;
  uint8_t tcp_flags = 0;
  uint8_t pad = 0;
  uint16_t sport = 0, dport = 0;  // ICMP: dport = type
  uint16_t in_port = 0;
  uint16_t pad2 = 0;
  uint32_t src_identity = 0, dst_identity = 0;
  uint32_t rule_id = 0;
  uint32_t pad3 = 0;
  uint8_t src[16] = {}, dst[16] = {};  // network order; IPv4 in the first 4 bytes
};
static_assert(sizeof(FlowEvent) == 72 && sizeof(FlowEvent) % 4 == 0);

class FlowEventRing {
 public:
  // `capacity` is rounded up to a power of two by rte_ring.
  static absl::StatusOr<std::unique_ptr<FlowEventRing>> Create(uint32_t capacity);
  ~FlowEventRing();
  FlowEventRing(const FlowEventRing&) = delete;
  FlowEventRing& operator=(const FlowEventRing&) = delete;

  // Workers: enqueue what fits; returns how many were lost.
  uint32_t Enqueue(const FlowEvent* ev, uint32_t n) noexcept {
    uint32_t done = rte_ring_mp_enqueue_burst_elem(r_, ev, sizeof(FlowEvent), n, nullptr);
    return n - done;
  }
  // Control: dequeue up to `n`.
  uint32_t Dequeue(FlowEvent* ev, uint32_t n) noexcept {
    return rte_ring_sc_dequeue_burst_elem(r_, ev, sizeof(FlowEvent), n, nullptr);
  }
  uint32_t count() const { return rte_ring_count(r_); }

 private:
  FlowEventRing() = default;
  rte_ring* r_ = nullptr;
};

}  // namespace meshgate::dataplane
