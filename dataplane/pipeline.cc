#include "dataplane/pipeline.h"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>

#include <cstring>

#include "classifier/acl_table.h"

namespace meshgate::dataplane {
namespace {

using classifier::AclKey;
using classifier::Direction;
using classifier::PolicyResult;
using classifier::Verdict;

// Answers an ARP request from an endpoint for any address but its own with
// the router MAC (the endpoint's gateway is this instance). Rewrites in place.
bool ArpReply(rte_mbuf* m, const PacketMeta& meta, const EndpointEntry& ep,
              const rte_ether_addr& router) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, meta.l3_off);
  if (rte_be_to_cpu_16(arp->arp_opcode) != RTE_ARP_OP_REQUEST) return false;
  uint32_t target = rte_be_to_cpu_32(arp->arp_data.arp_tip);
  if (target == ep.v4) return false;  // duplicate address detection: stay silent
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sha = router;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(target);
  eth->dst_addr = eth->src_addr;
  eth->src_addr = router;
  return true;
}

// TTL / hop limit; false when it would reach zero (RFC 1812 5.3.1).
bool DecrementTtl(rte_mbuf* m, const PacketMeta& meta) {
  if (meta.family == 4) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
    if (ip->time_to_live <= 1) return false;
    --ip->time_to_live;
    // RFC 1624 incremental update: TTL is the high byte of its 16-bit word.
    uint32_t sum = uint32_t(rte_be_to_cpu_16(ip->hdr_checksum)) + 0x0100;
    ip->hdr_checksum = rte_cpu_to_be_16(uint16_t(sum + (sum >> 16)));
    return true;
  }
  auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  if (ip6->hop_limits <= 1) return false;
  --ip6->hop_limits;
  return true;
}

constexpr uint32_t kOutsideRoute = 0xffffffff;  // no ipcache entry: snap.outside

// The connection tuple of a parsed IP packet (ICMP echo: id as both ports).
void CtKeyOf(rte_mbuf* m, const PacketMeta& meta, CtKey& k) {
  k = CtKey();
  k.family = meta.family;
  k.proto = meta.proto;
  if (meta.proto == 1 || meta.proto == 58) {
    k.sport = k.dport = meta.sport;  // the echo identifier; 0 for errors
  } else {
    k.sport = meta.sport;
    k.dport = meta.dport;
  }
  if (meta.family == 4) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
    std::memcpy(k.src, &ip->src_addr, 4);
    std::memcpy(k.dst, &ip->dst_addr, 4);
  } else {
    auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
    std::memcpy(k.src, ip6->src_addr, 16);
    std::memcpy(k.dst, ip6->dst_addr, 16);
  }
}

}  // namespace

void Pipeline::Drop(rte_mbuf** pkts, uint16_t n, uint16_t in_port) noexcept {
  if (n == 0) return;
  auto& c = counters_.drops[in_port < kMaxPorts ? in_port : 0];
  for (uint16_t i = 0; i < n; ++i) ++c.by_reason[uint8_t(Meta(pkts[i])->drop)];
  rte_pktmbuf_free_bulk(pkts, n);
}

uint64_t Pipeline::dropped(DropReason r) const {
  uint64_t sum = 0;
  for (const auto& d : counters_.drops) sum += d.by_reason[uint8_t(r)];
  return sum;
}

void Pipeline::Process(const Snapshot& snap, rte_mbuf** pkts, uint16_t n, uint16_t in_port,
                       TxStage& out) noexcept {
  rte_mbuf* drops[kBurst * 2];
  uint16_t nd = 0;
  counters_.rx += n;
  for (uint16_t i = 0; i < n; ++i) Meta(pkts[i])->in_port = in_port;
  n = ParseBurst(pkts, n, drops, &nd);

  const uint16_t epi = in_port < kMaxPorts ? snap.endpoint_of_port[in_port] : kNoEndpoint;
  static const EndpointEntry kNone{};
  const EndpointEntry& src_ep = epi != kNoEndpoint ? snap.endpoints[epi] : kNone;
  // Stage 1: ARP, anti-spoofing, the source identity, the destination route.
  rte_mbuf* work[kBurst];
  AclKey keys[kBurst * 2];
  const AclKey* kp[kBurst * 2];
  CtKey ct_keys[kBurst];
  uint16_t nw = 0, nk = 0;
  uint16_t egress_key[kBurst], ingress_key[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    PacketMeta* meta = Meta(m);
    auto drop = [&](DropReason r) {
      meta->drop = r;
      drops[nd++] = m;
    };
    if (epi == kNoEndpoint) {  // fabric and uplink ports come later
      drop(DropReason::kUnknownL3TargetAddress);
      continue;
    }
    const EndpointEntry& ep = src_ep;  // every packet here came from it
    if (meta->flags & kPktArp) {
      if (ArpReply(m, *meta, ep, snap.router_mac)) {
        out.pkts[in_port][out.n[in_port]++] = m;
        ++counters_.arp_replies;
      } else {
        ++counters_.arp_ignored;
        rte_pktmbuf_free(m);
      }
      continue;
    }
    // Anti-spoofing: an endpoint sends from its own addresses only.
    uint32_t nh = kOutsideRoute;
    if (meta->family == 4) {
      auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta->l3_off);
      if (rte_be_to_cpu_32(ip->src_addr) != ep.v4) {
        drop(DropReason::kInvalidSourceIp);
        continue;
      }
      if (rte_lpm_lookup(snap.lpm4, rte_be_to_cpu_32(ip->dst_addr), &nh) != 0) nh = kOutsideRoute;
    } else {
      auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta->l3_off);
      if (!ep.has_v6 || std::memcmp(ip6->src_addr, ep.v6.data(), 16) != 0) {
        drop(DropReason::kInvalidSourceIp);
        continue;
      }
      if (rte_lpm6_lookup(snap.lpm6, ip6->dst_addr, &nh) != 0) nh = kOutsideRoute;
    }
    // A later fragment has no ports to check policy on; fragment tracking
    // is not implemented (Cilium's 175 when the first fragment is unknown).
    if ((meta->flags & kPktFragment) && !(meta->flags & kPktFirstFragment)) {
      drop(DropReason::kFirstFragmentNotFound);
      continue;
    }
    meta->src_identity = ep.identity;
    meta->aux = nh;  // the route: an index into snap.routes, or kOutsideRoute
    if (ct_ != nullptr) CtKeyOf(m, *meta, ct_keys[nw]);
    work[nw++] = m;
  }

  // Stage 2: conntrack for the burst: replies of allowed connections skip
  // the policy (CT_REPLY); forward packets are checked every time.
  CtResult ctres[kBurst];
  int32_t ctpos[kBurst];
  const uint64_t now = ct_ != nullptr ? rte_rdtsc() : 0;
  if (ct_ != nullptr && nw > 0) {
    ct_->LookupBurst(ct_keys, nw, now, ctres, ctpos);
  } else {
    for (uint16_t i = 0; i < nw; ++i) ctres[i] = CtResult::kNew;
  }

  // Stage 3: policy keys. Egress at the source endpoint (peer = the
  // destination's identity); ingress at a local destination (peer = the
  // source endpoint's identity).
  for (uint16_t i = 0; i < nw; ++i) {
    egress_key[i] = ingress_key[i] = 0xffff;
    if (ctres[i] == CtResult::kReply) continue;
    const PacketMeta* meta = Meta(work[i]);
    const Route& route = meta->aux < snap.routes.size() ? snap.routes[meta->aux] : snap.outside;
    classifier::MakeAclKey(keys[nk], meta->proto, src_ep.subject_class,
                           snap.classes->Lookup(route.identity), meta->dport,
                           Direction::kEgress);
    kp[nk] = &keys[nk];
    egress_key[i] = nk++;
    if (route.kind == Route::kLocal) {
      const EndpointEntry& dst = snap.endpoints[route.endpoint];
      classifier::MakeAclKey(keys[nk], meta->proto, dst.subject_class,
                             snap.classes->Lookup(meta->src_identity), meta->dport,
                             Direction::kIngress);
      kp[nk] = &keys[nk];
      ingress_key[i] = nk++;
    }
  }

  // Stage 4: every verdict of the burst in one classify call.
  PolicyResult res[kBurst * 2];
  if (nk > 0) snap.acl->Classify(kp, nk, res);

  // Stage 5: verdicts, conntrack, rewrite, stage for TX.
  static const PolicyResult kReplyResult{Verdict::kForwarded, classifier::PolicyReason::kNone, 0,
                                         0};
  for (uint16_t i = 0; i < nw; ++i) {
    rte_mbuf* m = work[i];
    PacketMeta* meta = Meta(m);
    const PolicyResult& eg = egress_key[i] != 0xffff ? res[egress_key[i]] : kReplyResult;
    const PolicyResult* decided = &eg;
    if (ingress_key[i] != 0xffff) {
      const PolicyResult& in = res[ingress_key[i]];
      if (eg.verdict != Verdict::kDropped) decided = &in;
      if (in.verdict == Verdict::kAudit && eg.verdict == Verdict::kForwarded) decided = &in;
    }
    if (ctres[i] == CtResult::kReply) meta->flags |= kPktReply;
    meta->verdict = uint8_t(decided->verdict);
    meta->reason = uint8_t(decided->reason);
    meta->rule_id = decided->rule_id;
    if (eg.verdict == Verdict::kDropped) {
      meta->drop = DropReason(uint8_t(eg.reason));
      drops[nd++] = m;
      continue;
    }
    if (decided->verdict == Verdict::kDropped) {
      meta->drop = DropReason(uint8_t(decided->reason));
      drops[nd++] = m;
      continue;
    }
    if (eg.verdict == Verdict::kAudit || decided->verdict == Verdict::kAudit) ++counters_.audited;
    const Route& route = meta->aux < snap.routes.size() ? snap.routes[meta->aux] : snap.outside;
    if (route.kind != Route::kLocal) {
      // Encapsulation to other nodes and the uplink are the next slices.
      meta->drop = route.kind == Route::kRemote ? DropReason::kNoTunnelEndpoint
                                                : DropReason::kFibLookupFailed;
      drops[nd++] = m;
      continue;
    }
    if (!DecrementTtl(m, *meta)) {
      meta->drop = DropReason::kTtlExceeded;
      drops[nd++] = m;
      continue;
    }
    if (ct_ != nullptr) {
      if (ctres[i] == CtResult::kNew) {
        int32_t pos;
        if (!ct_->Create(ct_keys[i], meta->tcp_flags, now, &pos)) {
          meta->drop = DropReason::kCtMapInsertionFailed;
          drops[nd++] = m;
          continue;
        }
        ++counters_.ct_new;
      } else {
        ct_->Update(ctpos[i], ctres[i], meta->tcp_flags, now);
        if (ctres[i] == CtResult::kReply) ++counters_.ct_replies;
      }
    }
    const EndpointEntry& dst = snap.endpoints[route.endpoint];
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->src_addr = snap.router_mac;
    eth->dst_addr = dst.mac;
    out.pkts[dst.port][out.n[dst.port]++] = m;
    ++counters_.forwarded;
  }
  Drop(drops, nd, in_port);
}

void Pipeline::Flush(TxStage& out) noexcept {
  for (uint16_t p = 0; p < kMaxPorts; ++p) {
    uint16_t n = out.n[p];
    if (n == 0) continue;
    uint16_t sent = rte_eth_tx_burst(p, 0, out.pkts[p].data(), n);
    counters_.tx += sent;
    if (sent < n) {
      counters_.tx_full += n - sent;
      rte_pktmbuf_free_bulk(out.pkts[p].data() + sent, n - sent);
    }
    out.n[p] = 0;
  }
}

uint32_t Pipeline::PollOnce(const uint16_t* ports, uint16_t nports) noexcept {
  const Snapshot* snap = cell_.Read();  // once per iteration
  uint32_t total = 0;
  if (snap != nullptr) {
    rte_mbuf* pkts[kBurst];
    for (uint16_t i = 0; i < nports; ++i) {
      uint16_t n = rte_eth_rx_burst(ports[i], 0, pkts, kBurst);
      if (n == 0) continue;
      total += n;
      Process(*snap, pkts, n, ports[i], stage_);
      Flush(stage_);
    }
  }
  cell_.Quiescent(reader_id_);  // the loop's fixed point: no snapshot held
  return total;
}

}  // namespace meshgate::dataplane
