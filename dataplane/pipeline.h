// The worker's packet path:
//
//   RX burst -> parse -> per port role: an endpoint port answers ARP and
//   IPv6 neighbour solicitations,
//   drops spoofed sources and takes the endpoint's identity; the fabric port
//   decapsulates VXLAN/Geneve and takes the VNI's identity; the uplink takes
//   the source address's ipcache identity (unknown is world) -> destination
//   route (ipcache LPM: identity, where) -> conntrack -> egress verdict at a
//   source endpoint and ingress verdict at a local destination, all in ONE
//   rte_acl_classify over the burst -> rewrite (MACs, TTL/hop limit, IPv4
//   checksum, RFC 1624), encapsulate to the destination's node, or send to
//   the uplink's gateway -> TX.
//
// The fabric's usual frame (outer and inner headers) is parsed, stripped
// and its conntrack tuple built and hashed in one pass. The leading packets
// of a burst that are forward packets of connections with standing cached
// verdicts go from conntrack straight to TTL, refresh and delivery in one
// pass; from the first other packet on, the rest of the burst takes every
// stage (arrival order is kept either way; docs/design/packet-path.md).
//
// Each packet's facts travel in its PacketMeta (packet.h); no stage looks
// anything up twice. One drop exit counts the reason per input port and
// frees in bulk. With a Conntrack, replies of allowed connections skip the
// policy (Cilium's CT_REPLY, CT_RELATED) while forward packets are checked
// every time.
// With a FlowEventRing, every drop and the verdict of every new connection
// become flow events (flow_event.h), enqueued once per burst.
// ICMP errors quoting a tracked connection are related and skip policy too.
// Services: at a source endpoint a packet to a service frontend is DNATed to
// a backend before policy (so L4 policy sees the backend port, as Cilium);
// the backend is pinned to the connection in conntrack and replies are
// reverse-NATed to the frontend; no serving backend is Cilium's 158.
// Services need a Conntrack. Services with sessionAffinity ClientIP keep a
// client on its backend through an AffinityTable (affinity.h).
//
// Thread-safety: a Pipeline belongs to one lcore (its reader id in the
// RcuCell); its counters are written by that lcore only.
// Hot path: Process/PollOnce allocate nothing, lock nothing, log nothing.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "classifier/verdict_cache.h"
#include "dataplane/affinity.h"
#include "dataplane/conntrack.h"
#include "dataplane/drop.h"
#include "dataplane/flow_event.h"
#include "dataplane/packet.h"
#include "dataplane/rcu_cell.h"
#include "dataplane/snapshot.h"

namespace meshgate::dataplane {

inline constexpr uint16_t kBurst = 32;
// A burst's connections are looked up and reserved in one call each.
static_assert(kBurst <= Conntrack::kMaxBurst);
// Entries of each worker's verdict cache (classifier/verdict_cache.h):
// 65,536 x 32 bytes = 2 MiB. Sized by bench pipeline's new connections
// (10k rules, flows spread over every rule): 16,384 entries answered 64%
// of their keys, 65,536 answered 97% (docs/benchmarks.md).
inline constexpr uint32_t kVerdictCacheEntries = 65536;

// Per-lcore counters. dp: rw (owning lcore), cp: ro (relaxed reads).
struct alignas(RTE_CACHE_LINE_SIZE) PipelineCounters {
  uint64_t rx = 0, tx = 0, tx_full = 0, forwarded = 0, arp_replies = 0, arp_ignored = 0;
  uint64_t ndp_replies = 0, ndp_ignored = 0;
  uint64_t audited = 0;  // would-be drops forwarded under audit mode
  uint64_t ct_new = 0, ct_replies = 0, encapsulated = 0;
  uint64_t verdicts_cached = 0;  // forward packets decided by their connection's cached verdict
  uint64_t acl_cache_hits = 0;   // policy keys answered by the verdict cache, not rte_acl
  uint64_t fragments_untracked = 0;  // first fragments not recorded (table full)
  uint64_t events = 0, events_lost = 0;
  // PollOnce iterations that received packets, and their TSC cycles from
  // the first RX burst to the last TX burst: busy_cycles / rx is the core's
  // cost per packet whatever the offered load (idle polling excluded), and
  // rx / busy_polls the packets each busy iteration found.
  uint64_t busy_polls = 0, busy_cycles = 0;
  std::array<DropCounters, kMaxPorts> drops{};  // by input port, by reason
};

// What a port's NIC does for the pipeline: Instance enables the offloads a
// device offers when it configures the port and tells each pipeline.
enum PortOffload : uint8_t {
  kRxIpv4Cksum = 1 << 0,  // RTE_ETH_RX_OFFLOAD_IPV4_CKSUM: header checksums checked
  kTxIpv4Cksum = 1 << 1,  // RTE_ETH_TX_OFFLOAD_IPV4_CKSUM: header checksums filled in
  // Not an offload: the PMD copies each received frame into its mbuf on
  // the polling core (memif in copy mode, vhost, tap, af_packet, pcap), so
  // the frame is in this core's L1 when RX returns and the parse fetches no
  // frame's data ahead. NICs (DMA), rings and virtio-user (another core
  // wrote the data) leave it off.
  kRxDataCopied = 1 << 2,
};

// Packets leaving one burst, staged per output port.
struct TxStage {
  std::array<std::array<rte_mbuf*, kBurst * 2>, kMaxPorts> pkts;
  std::array<uint16_t, kMaxPorts> n{};
  uint32_t used = 0;  // a bit per port with packets staged: Flush visits those only
  static_assert(kMaxPorts <= 32);
  void Add(uint16_t port, rte_mbuf* m) noexcept {
    used |= 1u << port;  // set again for each packet: cheaper than a test
    pkts[port][n[port]++] = m;
  }
};

class Pipeline {
 public:
  // `cell` (and `ct`, if given; shared by the instance's workers) must
  // outlive the pipeline; `reader_id` is this lcore's RCU id.
  // REQUIRES: RegisterPacketMeta() has succeeded (aborts otherwise: every
  // packet's metadata would be written out of place).
  // `verdict_cache` entries (0: off) cache this worker's ACL verdicts.
  Pipeline(RcuCell<Snapshot>& cell, uint32_t reader_id, Conntrack* ct = nullptr,
           FlowEventRing* events = nullptr, AffinityTable* affinity = nullptr,
           uint32_t verdict_cache = kVerdictCacheEntries);

  // Processes a burst that arrived on `in_port` against `snap`. Forwarded
  // packets are staged in `out`; dropped ones are counted and freed.
  // `now_tsc`: the TSC when the burst was received, if the caller read it
  // (PollOnce does, once per iteration); 0: Process reads it (rte_rdtsc
  // takes some 25 cycles, most of a cycle per packet of a burst).
  void Process(const Snapshot& snap, rte_mbuf** pkts, uint16_t n, uint16_t in_port,
               TxStage& out, uint64_t now_tsc = 0) noexcept;

  // One loop iteration over `ports` (queue `queue` of each): read the
  // snapshot once, RX a burst per port, Process, TX, report quiescence.
  // Returns packets received.
  uint32_t PollOnce(const uint16_t* ports, uint16_t nports, uint16_t queue = 0) noexcept;

  // Transmits what `out` holds on `queue`; what a port refuses is counted
  // and freed.
  void Flush(TxStage& out, uint16_t queue = 0) noexcept;

  // PortOffload bits of `port` (none by default). Set before the worker runs.
  void SetPortOffloads(uint16_t port, uint8_t offloads) {
    if (port < kMaxPorts) offloads_[port] = offloads;
  }

  const PipelineCounters& counters() const { return counters_; }
  uint64_t dropped(DropReason r) const;  // summed over ports

 private:
  void Drop(const Snapshot& snap, rte_mbuf** pkts, uint16_t n, uint16_t in_port) noexcept;
  // Services (at a source endpoint): the pre-DNAT tuple, the frontend to
  // restore on replies, and the backend pinned to the connection. Scratch
  // space of one burst, a member so that no burst pays for constructing it.
  // A packet to a service frontend through a burst: `frontend` and `svc`
  // (the service), `pre` (the tuple before translation, the pin's key)
  // and its hash, the pin once looked up, the reverse NAT for replies.
  struct SvcWork {
    bool active = false, pinned = false;
    int32_t pin_pos = -1;
    int32_t svc = -1;
    ServiceKey frontend;
    CtKey pre;
    SlotIndex::Hash pre_h;
    CtNat reverse, pin;
  };
  // Service DNAT in two halves, so that a burst's pins are looked up
  // together: the service and the drops (157 fragments, 158 no backend),
  // the pin's key hashed and its bucket fetched (ServiceMatch); then, after
  // the burst's lookup, the pinned backend or a new pick and the rewrite
  // (ServiceTranslate).
  DropReason ServiceMatch(const Snapshot& snap, rte_mbuf* m, const PacketMeta& meta,
                          SvcWork& sw) noexcept;
  void ServiceTranslate(const Snapshot& snap, rte_mbuf* m, PacketMeta& meta, uint64_t now,
                        SvcWork& sw, CtResult r, int32_t pos) noexcept;
  // An endpoint's leading usual IPv4 frames (PlainEndpoint, not to a
  // service), their tuples built (ct_keys_) and hashed (`ct_h`), their TCP
  // flags in lead_flags_, their metadata not written (Process writes it
  // for those the one pass does not deliver), from the first of `pkts`:
  // returns how many. Conntrack required. `ck_mask`:
  // RTE_MBUF_F_RX_IP_CKSUM_MASK when the port's checksum verdict is taken,
  // else 0. `kCk`: whether it may be other than 0 (a port without the
  // offload tests no flags); `kPrefetch`: whether the next frame's data is
  // fetched ahead (not on a port whose PMD has just written it,
  // kRxDataCopied). (Out of line or inlined in Process, callgrind counts
  // the same instructions; as a function its loop names what it needs.)
  template <bool kCk, bool kPrefetch>
  uint16_t LeadingPlain4(rte_mbuf** pkts, uint16_t n, uint64_t ck_mask, uint32_t ep_be,
                         const ServiceTable* services, SlotIndex::Hash* ct_h) noexcept;
  // The one pass over the leading frames (LeadingPlain4's, `lead` of
  // them, in work[] with their first candidates `cand`): from the first,
  // for as long as each is its candidate's forward tuple, live, with a
  // cached verdict that stands for the endpoint's `identity` and names a
  // local endpoint, and a TTL above 1: each delivered there (SendLocal),
  // its connection refreshed, its metadata left unwritten. Returns how
  // many; Process takes the rest. (A function of its own: inside
  // Process's loop every value it needs was reloaded from the stack.)
  uint16_t LeadLocal(const EndpointEntry* endpoints, uint16_t lead, const uint32_t* cand,
                     uint64_t now, uint64_t other_expires, const VerdictTest& stands,
                     uint32_t identity, rte_mbuf* const* work, TxStage& out) noexcept;
  DropReason Admit(const Snapshot& snap, rte_mbuf* m, PacketMeta& meta, const Route& route) noexcept;
  void SendLocal(const EndpointEntry& dst, rte_mbuf* m, TxStage& out) noexcept;
  DropReason Send(const Snapshot& snap, rte_mbuf* m, const PacketMeta& meta, const Route& route,
                  uint16_t ep, TxStage& out) noexcept;
  void Event(const Snapshot& snap, rte_mbuf* m, TrafficDirection dir) noexcept;
  void FlushEvents() noexcept;

  RcuCell<Snapshot>& cell_;
  uint32_t reader_id_;
  Conntrack* ct_;
  FlowEventRing* events_;
  AffinityTable* affinity_;  // sessionAffinity ClientIP; null: none
  PipelineCounters counters_;
  FlowEvent ev_[kBurst * 2];  // this burst's events, enqueued at once
  uint16_t nev_ = 0;
  TxStage stage_;
  SvcWork svc_[kBurst];  // Process only
  // Per-burst tuples and verdicts: members for the same reason (their
  // types zero-initialize, ~2 KiB per burst otherwise).
  CtKey ct_keys_[kBurst];
  uint8_t lead_flags_[kBurst];  // the leading frames' TCP flags (LeadingPlain4)
  classifier::PolicyResult res_[kBurst * 2];
  classifier::VerdictCache vcache_;
  std::array<uint8_t, kMaxPorts> offloads_{};  // PortOffload bits by port
};

}  // namespace meshgate::dataplane
