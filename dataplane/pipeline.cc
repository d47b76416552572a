#include "dataplane/pipeline.h"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_debug.h>
#include <rte_ethdev.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_random.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "classifier/acl_table.h"
#include "identity/numeric.h"

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

// Answers a Neighbor Solicitation from an endpoint for any address but its
// own with a Neighbor Advertisement carrying the router MAC (RFC 4861 7.2.4:
// Router, Solicited and Override set; target link-layer address option).
// Duplicate address detection (unspecified source) and solicitations for
// the endpoint's own address stay unanswered. Rewrites in place.
bool NdpReply(rte_mbuf* m, const PacketMeta& meta, const EndpointEntry& ep,
              const rte_ether_addr& router) {
  auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  uint8_t* ns = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l4_off);
  uint32_t avail = rte_pktmbuf_data_len(m) - meta.l4_off;
  static const uint8_t kUnspecified[16] = {};
  if (avail < 24 || ip6->hop_limits != 255 || std::memcmp(ip6->src_addr, kUnspecified, 16) == 0) {
    return false;
  }
  const uint8_t* target = ns + 8;
  if (ep.has_v6 && std::memcmp(target, ep.v6.data(), 16) == 0) return false;
  uint8_t tgt[16];
  std::memcpy(tgt, target, 16);
  // The advertisement: 24 bytes + an 8-byte target link-layer option.
  uint32_t want = meta.l4_off + 32;
  if (rte_pktmbuf_data_len(m) < want) {
    if (rte_pktmbuf_append(m, uint16_t(want - rte_pktmbuf_data_len(m))) == nullptr) return false;
  } else if (rte_pktmbuf_data_len(m) > want) {
    rte_pktmbuf_trim(m, uint16_t(rte_pktmbuf_data_len(m) - want));
  }
  ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  uint8_t* na = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l4_off);
  std::memcpy(ip6->dst_addr, ip6->src_addr, 16);
  std::memcpy(ip6->src_addr, tgt, 16);
  ip6->payload_len = rte_cpu_to_be_16(uint16_t(meta.l4_off + 32 - meta.l3_off - 40));
  ip6->proto = 58;  // any extension headers are gone with the rewrite below
  ip6->hop_limits = 255;
  std::memset(na, 0, 32);
  na[0] = 136;   // Neighbor Advertisement
  na[4] = 0xe0;  // R, S, O
  std::memcpy(na + 8, tgt, 16);
  na[24] = 2;  // target link-layer address option, length 1 (8 bytes)
  na[25] = 1;
  std::memcpy(na + 26, router.addr_bytes, 6);
  uint16_t ck = rte_ipv6_udptcp_cksum(ip6, na);
  std::memcpy(na + 2, &ck, 2);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = eth->src_addr;
  eth->src_addr = router;
  return true;
}

// TTL / hop limit; false when it would reach zero (RFC 1812 5.3.1).
// An IPv4 packet's, its header at `l3_off`.
[[gnu::always_inline]] inline bool DecrementTtl4(rte_mbuf* m, uint16_t l3_off) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3_off);
  if (ip->time_to_live <= 1) return false;
  --ip->time_to_live;
  // RFC 1624 incremental update: TTL is the high byte of its 16-bit
  // word, so the checksum gains 0x0100 (one's complement). Added to the
  // field as it lies in memory, byte-swapped: the one's complement sum
  // does not depend on byte order (RFC 1071 2(B)), so the little-endian
  // value gains 0x0001.
  static_assert(RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN);
  const uint32_t sum = uint32_t(ip->hdr_checksum) + 1;
  ip->hdr_checksum = uint16_t(sum + (sum >> 16));
  return true;
}
[[gnu::always_inline]] inline bool DecrementTtl(rte_mbuf* m, const PacketMeta& meta) {
  if (meta.family == 4) [[likely]] return DecrementTtl4(m, meta.l3_off);
  auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  if (ip6->hop_limits <= 1) return false;
  --ip6->hop_limits;
  return true;
}

constexpr uint16_t kNoKey = 0xffff;

const Route& RouteAt(const Snapshot& snap, uint32_t nh) { return snap.ipcache->At(nh); }

bool SourceIsEndpoint(rte_mbuf* m, const PacketMeta& meta, const EndpointEntry& ep) {
  if (meta.family == 4) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
    return ep.v4 != 0 && __builtin_bswap32(ip->src_addr) == ep.v4;  // 0: no IPv4 address
  }
  auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  return ep.has_v6 && std::memcmp(ip6->src_addr, ep.v6.data(), 16) == 0;
}

// Ones' complement arithmetic on 16-bit words as they lie in memory (the
// sum is byte-order independent, RFC 1071 2(B)), folded to 16 bits.
uint16_t Fold(uint32_t s) {
  s = (s & 0xffff) + (s >> 16);
  return uint16_t((s & 0xffff) + (s >> 16));
}
uint32_t Sum16(const uint8_t* p, uint32_t len) {  // `len` even
  uint32_t s = 0;
  for (uint32_t i = 0; i < len; i += 2) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    s += w;
  }
  return s;
}
// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum at `ck` after
// fields summing to `from` now sum to `to`.
void CsumReplace(uint8_t* ck, uint32_t from, uint32_t to) {
  uint16_t hc;
  std::memcpy(&hc, ck, 2);
  hc = uint16_t(~Fold(uint32_t(uint16_t(~hc)) + uint16_t(~Fold(from)) + Fold(to)));
  std::memcpy(ck, &hc, 2);
}

// SCTP's checksum (RFC 9260 6.8, Appendix A): CRC32c (rte_hash_crc is the
// SSE4.2/ARMv8 CRC32c, without the final inversion) over the SCTP packet
// with the field zeroed, inverted, stored least significant byte first.
uint32_t SctpLength(rte_mbuf* m, const PacketMeta& meta) {
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, meta.l3_off);
  const uint32_t end = meta.family == 4 ? meta.l3_off + (uint32_t(l3[2]) << 8 | l3[3])
                                        : meta.l3_off + 40u + (uint32_t(l3[4]) << 8 | l3[5]);
  return end >= meta.l4_off + 12u ? end - meta.l4_off : 0;  // the parser checked end <= length
}
uint32_t SctpCrc(uint8_t* sctp, uint32_t len) {
  uint8_t field[4];
  std::memcpy(field, sctp + 8, 4);
  std::memset(sctp + 8, 0, 4);
  uint32_t crc = ~rte_hash_crc(sctp, len, 0xffffffffu);
  std::memcpy(sctp + 8, field, 4);
  return rte_cpu_to_le_32(crc);
}
bool SctpCrcValid(rte_mbuf* m, const PacketMeta& meta) {
  const uint32_t len = SctpLength(m, meta);
  if (len == 0) return false;
  uint8_t* sctp = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l4_off);
  uint32_t have;
  std::memcpy(&have, sctp + 8, 4);
  return have == SctpCrc(sctp, len);
}
void SctpCrcFill(rte_mbuf* m, const PacketMeta& meta) {
  uint8_t* sctp = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l4_off);
  const uint32_t crc = SctpCrc(sctp, SctpLength(m, meta));
  std::memcpy(sctp + 8, &crc, 4);
}

// Rewrites the destination (DNAT) or the source (reverse NAT) address and
// port of a TCP/UDP/SCTP packet, keeping the metadata in step. Checksums
// are updated incrementally (RFC 1624), as Cilium's l3/l4_csum_replace do:
// the IPv4 header's for the address, TCP's and UDP's for the address (in
// their pseudo-header) and the port, so a packet that arrived with a wrong
// checksum still has one. A UDP checksum of 0 over IPv4 (none) stays 0; an
// updated one that comes out 0 is sent as 0xffff (RFC 768). SCTP's CRC32c
// covers the ports and is no ones' complement sum: it is computed again
// over the SCTP packet, when the one it arrived with was right.
void Rewrite(rte_mbuf* m, PacketMeta& meta, bool destination, const uint8_t* addr, uint16_t port) {
  const uint32_t alen = meta.family == 4 ? 4 : 16;
  uint8_t* l3 = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l3_off);
  uint8_t* a = meta.family == 4 ? l3 + (destination ? 16 : 12) : l3 + (destination ? 24 : 8);
  uint8_t* l4 = rte_pktmbuf_mtod_offset(m, uint8_t*, meta.l4_off);
  uint8_t* p = l4 + (destination ? 2 : 0);  // TCP, UDP and SCTP: ports first
  const uint8_t new_port[2] = {uint8_t(port >> 8), uint8_t(port)};
  const uint32_t addr_from = Sum16(a, alen), addr_to = Sum16(addr, alen);
  const uint32_t l4_from = addr_from + Sum16(p, 2), l4_to = addr_to + Sum16(new_port, 2);
  if (meta.family == 4) CsumReplace(l3 + 10, addr_from, addr_to);
  if (meta.proto == 6) {
    CsumReplace(l4 + 16, l4_from, l4_to);
  } else if (meta.proto == 17 && (meta.family == 6 || l4[6] != 0 || l4[7] != 0)) {
    CsumReplace(l4 + 6, l4_from, l4_to);
    if (l4[6] == 0 && l4[7] == 0) l4[6] = l4[7] = 0xff;
  }
  const bool sctp_ok = meta.proto == 132 && SctpCrcValid(m, meta);
  std::memcpy(a, addr, alen);
  p[0] = new_port[0];
  p[1] = new_port[1];
  (destination ? meta.dport : meta.sport) = port;
  if (sctp_ok) SctpCrcFill(m, meta);
}

enum class Addr { kSource, kDestination };

// The ipcache entry of the packet's source or destination address, or
// kOutsideRoute when no entry covers it.
uint32_t IpcacheSlot(rte_mbuf* m, const PacketMeta& meta, const Snapshot& snap, Addr which) {
  if (meta.family == 4) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
    return snap.ipcache->Lookup4(
        __builtin_bswap32(which == Addr::kSource ? ip->src_addr : ip->dst_addr));
  }
  auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
  return snap.ipcache->Lookup6(which == Addr::kSource ? ip6->src_addr : ip6->dst_addr);
}

// The local endpoint a route leads to, or kNoEndpoint (gone in this snapshot).
uint16_t EndpointOf(const Snapshot& snap, const Route& r) {
  return r.kind == Route::kLocal && r.port < kMaxPorts ? snap.endpoint_of_port[r.port]
                                                       : kNoEndpoint;
}

// Outer headers: Ethernet + IPv4 + UDP + VXLAN or Geneve (no options).
constexpr uint16_t kEncapLen = 14 + 20 + 8 + 8;

// Encapsulates the frame for `route`'s node: VNI = the source identity
// (Cilium bpf/lib/encap.h: tunnel_id = seclabel); RFC 7348 VXLAN on UDP
// 8472 (Cilium's port) or RFC 8926 Geneve on 6081; the UDP source port
// carries flow entropy; IPv4 UDP checksum 0 (RFC 7348 5).
// `tx_ip_cksum`: the fabric port fills in IPv4 header checksums
// (RTE_MBUF_F_TX_IP_CKSUM: the field must be 0, l2_len and l3_len set).
bool Encapsulate(rte_mbuf* m, const PacketMeta& meta, const Snapshot& snap, const Route& route,
                 bool tx_ip_cksum) {
  const FabricConfig& f = snap.fabric;
  uint16_t inner_len = rte_pktmbuf_pkt_len(m);
  auto* inner = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  inner->src_addr = snap.router_mac;  // the receiver routes by inner IP
  inner->dst_addr = snap.router_mac;
  auto* h = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kEncapLen));
  if (h == nullptr) return false;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(h);
  eth->src_addr = f.node_mac;
  rte_ether_addr dmac = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
  for (const auto& [ip, mac] : f.neighbors) {
    if (ip == route.tunnel_v4) dmac = mac;
  }
  eth->dst_addr = dmac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(h + 14);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(uint16_t(20 + 8 + 8 + inner_len));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(f.node_v4);
  ip->dst_addr = rte_cpu_to_be_32(route.tunnel_v4);
  ip->hdr_checksum = 0;
  if (tx_ip_cksum) {
    m->l2_len = 14;
    m->l3_len = 20;
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
  } else {
    ip->hdr_checksum = rte_ipv4_cksum(ip);
  }
  auto* udp = reinterpret_cast<rte_udp_hdr*>(h + 34);
  uint32_t entropy = rte_hash_crc_4byte(uint32_t(meta.sport) << 16 | meta.dport,
                                        rte_hash_crc_4byte(meta.src_identity, meta.proto));
  udp->src_port = rte_cpu_to_be_16(uint16_t(49152 | (entropy & 0x3fff)));
  udp->dst_port = rte_cpu_to_be_16(f.encap == Encap::kVxlan ? kVxlanPort : kGenevePort);
  udp->dgram_len = rte_cpu_to_be_16(uint16_t(8 + 8 + inner_len));
  udp->dgram_cksum = 0;
  uint8_t* t = h + 42;
  uint32_t vni = meta.src_identity & 0xffffff;
  if (f.encap == Encap::kVxlan) {
    t[0] = 0x08;  // I flag: the VNI is valid
    t[1] = t[2] = t[3] = 0;
  } else {
    t[0] = 0;  // version 0, no options
    t[1] = 0;
    t[2] = 0x65;  // protocol type: Transparent Ethernet Bridging (0x6558)
    t[3] = 0x58;
  }
  t[4] = uint8_t(vni >> 16);
  t[5] = uint8_t(vni >> 8);
  t[6] = uint8_t(vni);
  t[7] = 0;
  return true;
}

// Strips the `outer` bytes of a fabric frame's tunnel headers and parses
// the inner frame; the VNI is its identity.
DropReason ParseInner(rte_mbuf* m, PacketMeta& meta, uint32_t outer, uint32_t vni) {
  if (outer >= rte_pktmbuf_data_len(m) || rte_pktmbuf_adj(m, uint16_t(outer)) == nullptr) {
    return DropReason::kInvalidPacket;
  }
  if (!ParsePacket(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), meta)) {
    return meta.drop;
  }
  if (meta.flags & kPktArp) return DropReason::kUnsupportedL3Protocol;
  meta.src_identity = vni;
  return DropReason::kNone;
}

// A VNI that no packet may carry: bpf_overlay.c drops a packet claiming
// the host identity.
bool ReservedVni(uint32_t vni) {
  return vni == identity::reserved::kHost || vni == identity::reserved::kUnknown;
}

// Validates and strips the outer headers of a parsed frame from the fabric;
// the inner frame's metadata replaces the outer's, the VNI is its identity.
DropReason Decapsulate(rte_mbuf* m, PacketMeta& meta, const FabricConfig& f) {
  if (meta.family != 4 || meta.proto != IPPROTO_UDP) return DropReason::kUnknownL3TargetAddress;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
  if (rte_be_to_cpu_32(ip->dst_addr) != f.node_v4) return DropReason::kUnknownL3TargetAddress;
  uint16_t want = f.encap == Encap::kVxlan ? kVxlanPort : kGenevePort;
  if (meta.dport != want) return DropReason::kUnknownL3TargetAddress;
  uint32_t hdr = meta.l4_off + 8u;  // the VXLAN or Geneve header
  if (hdr + 8 > rte_pktmbuf_data_len(m)) return DropReason::kInvalidPacket;
  const uint8_t* t = rte_pktmbuf_mtod_offset(m, const uint8_t*, hdr);
  uint32_t opts = 0;
  if (f.encap == Encap::kVxlan) {
    if (!(t[0] & 0x08)) return DropReason::kInvalidVni;
  } else {
    if ((t[0] >> 6) != 0 || t[2] != 0x65 || t[3] != 0x58) return DropReason::kInvalidPacket;
    opts = uint32_t(t[0] & 0x3f) * 4;  // options are skipped, not interpreted
  }
  uint32_t vni = uint32_t(t[4]) << 16 | uint32_t(t[5]) << 8 | t[6];
  if (ReservedVni(vni)) return DropReason::kInvalidIdentity;
  return ParseInner(m, meta, hdr + 8 + opts, vni);
}

// The outer headers of a fabric frame in their usual shape (Ethernet
// without tags, IPv4 without options or fragmentation, UDP to this node's
// tunnel port, a valid tunnel header): the checks ParsePacket and
// Decapsulate make, in one pass over fixed offsets. False for a frame of
// any other shape, good or bad: it takes the general path, which decides
// (and names its drop reason). True: `*outer` bytes of tunnel headers
// precede the inner frame, whose identity is `*vni`.
bool PlainOuter(const uint8_t* d, uint32_t len, const FabricConfig& f, uint32_t* outer,
                uint32_t* vni) {
  constexpr uint32_t kIp = 14, kUdp = kIp + 20, kTun = kUdp + 8;
  if (len < kTun + 8 || d[12] != 0x08 || d[13] != 0x00 || d[kIp] != 0x45) return false;
  const uint32_t total = uint32_t(d[kIp + 2]) << 8 | d[kIp + 3];
  const uint32_t ulen = uint32_t(d[kUdp + 4]) << 8 | d[kUdp + 5];
  if (total < 28 || kIp + total > len || ulen < 8 || ulen > total - 20) return false;
  if ((d[kIp + 6] & 0x3f) != 0 || d[kIp + 7] != 0 || d[kIp + 9] != IPPROTO_UDP) return false;
  uint32_t dst;
  std::memcpy(&dst, d + kIp + 16, 4);
  const uint16_t port = f.encap == Encap::kVxlan ? kVxlanPort : kGenevePort;
  if (rte_be_to_cpu_32(dst) != f.node_v4 || d[kUdp + 2] != (port >> 8) ||
      d[kUdp + 3] != (port & 0xff)) {
    return false;
  }
  const uint8_t* t = d + kTun;
  uint32_t opts = 0;
  if (f.encap == Encap::kVxlan) {
    if (!(t[0] & 0x08)) return false;
  } else {
    if ((t[0] >> 6) != 0 || t[2] != 0x65 || t[3] != 0x58) return false;
    opts = uint32_t(t[0] & 0x3f) * 4;
  }
  *vni = uint32_t(t[4]) << 16 | uint32_t(t[5]) << 8 | t[6];
  *outer = kTun + 8 + opts;
  return !ReservedVni(*vni) && *outer < len && Ipv4Header20ValidV4(d + kIp);
}

// What the fabric's usual frame must carry, in the byte order it lies in:
// computed once per burst.
struct FabricWire {
  uint32_t node_be;  // this node's address
  uint16_t port_be;  // the tunnel's UDP port
  bool geneve;
  explicit FabricWire(const FabricConfig& f)
      : node_be(rte_cpu_to_be_32(f.node_v4)),
        port_be(rte_cpu_to_be_16(f.encap == Encap::kVxlan ? kVxlanPort : kGenevePort)),
        geneve(f.encap == Encap::kGeneve) {}
};

template <typename T>
[[gnu::always_inline]] inline T LoadAt(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
// (__builtin_bswap, not rte_be_to_cpu: DPDK's x86 byte swap of a variable is
// an asm statement the compiler can neither fold into the load nor move.
// The words below are read and masked as a little-endian CPU holds them.)
static_assert(RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN);

// The conntrack tuple's first 8 bytes as the plain parses build them:
// family, protocol, `aux` 0, ports (host order, `ports` = sport | dport <<
// 16) (CtKey).
[[gnu::always_inline]] inline uint64_t TupleHeadOfPorts(uint8_t family, uint8_t proto,
                                                        uint32_t ports) {
  return family | uint32_t(proto) << 8 | uint64_t(ports) << 32;
}
[[gnu::always_inline]] inline uint64_t TupleHead(uint8_t family, uint8_t proto, uint16_t sport,
                                                 uint16_t dport) {
  return TupleHeadOfPorts(family, proto, sport | uint32_t(dport) << 16);
}

// A TCP or UDP header's ports in host order, sport | dport << 16, from
// one 32-bit load: swapped whole they lie as dport | sport << 16, then
// rotated. (Swapped half by half, GCC moved the upper half through the
// stack; two 16-bit loads cost 6 more instructions per packet.)
[[gnu::always_inline]] inline uint32_t PortsAt(const uint8_t* l4) {
  return std::rotr(__builtin_bswap32(LoadAt<uint32_t>(l4)), 16);
}

// An IPv4 tuple in five 8-byte stores: its head (TupleHead), then the
// addresses (as they lie in the packet) with their unused bytes 0. Word
// by word: the hash reads the key back in 8-byte words right away, and a
// load over several smaller stores cannot be forwarded from the store
// buffer (perf: a zeroed temporary copied in, then fields stored byte by
// byte, stalled the hash and the copy; a quarter of ServiceMatch).
[[gnu::always_inline]] inline void WriteKey4(CtKey& key, uint64_t head, uint32_t s4, uint32_t d4) {
  static_assert(offsetof(CtKey, src) == 8 && offsetof(CtKey, dst) == 24 && sizeof(CtKey) == 40);
  auto* k = reinterpret_cast<uint8_t*>(&key);
  const uint64_t src = s4, dst = d4, zero = 0;
  std::memcpy(k, &head, 8);
  std::memcpy(k + 8, &src, 8);
  std::memcpy(k + 16, &zero, 8);
  std::memcpy(k + 24, &dst, 8);
  std::memcpy(k + 32, &zero, 8);
}

// The same for IPv6: the head, then the addresses of the header at `ip6`.
[[gnu::always_inline]] inline void WriteKey6(CtKey& key, uint64_t head, const uint8_t* ip6) {
  auto* k = reinterpret_cast<uint8_t*>(&key);
  std::memcpy(k, &head, 8);
  std::memcpy(k + 8, ip6 + 8, 16);  // rte_ipv6_hdr: src_addr, dst_addr
  std::memcpy(k + 24, ip6 + 24, 16);
}

// The metadata of an untagged TCP or UDP frame without IP options or
// extension headers (L3 at 14, L4 at `l4_off`), as the general parse and
// the role stage leave it, from the tuple's head (TupleHead: family,
// protocol, ports), in four stores: the fields lie as the head and the
// constants need (bytes 0-7: offsets and ports; 8-15: family, protocol,
// flags 0, TCP flags, in_port with reason_dir 0, drop, verdict and reason
// 0; 16-27: identity, rule 0, route 0).
[[gnu::always_inline]] inline void PlainMeta(PacketMeta& meta, uint64_t head, uint16_t l4_off,
                                             uint8_t tcp_flags, uint32_t identity,
                                             uint16_t in_port) {
  static_assert(offsetof(PacketMeta, l4_off) == 2 && offsetof(PacketMeta, sport) == 4 &&
                offsetof(PacketMeta, dport) == 6 && offsetof(PacketMeta, family) == 8 &&
                offsetof(PacketMeta, proto) == 9 && offsetof(PacketMeta, tcp_flags) == 11 &&
                offsetof(PacketMeta, drop) == 13 && offsetof(PacketMeta, reason) == 15 &&
                offsetof(PacketMeta, src_identity) == 16 && offsetof(PacketMeta, rule_id) == 20 &&
                offsetof(PacketMeta, aux) == 24 && sizeof(PacketMeta) == 28);
  static_assert(int(DropReason::kNone) == 0);
  const uint64_t w0 = 14u | uint32_t(l4_off) << 16 | (head & ~uint64_t(0xffffffff));
  const uint64_t w1 = (head & 0xffff) | uint32_t(tcp_flags) << 24 | uint64_t(in_port & 0x3f) << 32;
  const uint64_t zero = 0;
  auto* p = reinterpret_cast<uint8_t*>(&meta);
  std::memcpy(p, &w0, 8);
  std::memcpy(p + 8, &w1, 8);  // byte 12: in_port (bits 0-5), reason_dir 0
  std::memcpy(p + 16, &identity, 4);
  std::memcpy(p + 20, &zero, 8);
}

// The fabric's usual frame whole, outer and inner: PlainOuter's checks on
// the outer headers (a Geneve header without options only) and then
// ParsePlain's on the inner frame (untagged Ethernet, IPv4 without options
// or fragmentation, TCP or UDP), over fixed offsets in one pass, reading
// words where the two read bytes. True: `meta` is what ParseInner would
// have written, with `in_port`; `*head` (TupleHead), `*src`, `*dst` the
// inner tuple's. False for any other frame, good or bad, with nothing written:
// the caller takes PlainOuter and the general parse, which decide.
[[gnu::always_inline]] inline bool PlainFabric(const uint8_t* d, uint32_t len, const FabricWire& w,
                                               uint16_t in_port, PacketMeta& meta, uint64_t* head,
                                               uint32_t* src, uint32_t* dst) {
  constexpr uint32_t kIp = 14, kUdp = kIp + 20, kTun = kUdp + 8, kIn = kTun + 8;
  constexpr uint32_t kIp2 = kIn + 14, kL4 = kIp2 + 20;
  // Outer: ParsePlain's frame (PlainOuter: len >= kTun + 8) and the inner
  // ParsePlain's (its length, len - kIn, >= 42).
  if (len < kL4 + 8) return false;
  // EtherType IPv4 and version 4 / 20-byte header, outer and inner.
  if ((LoadAt<uint32_t>(d + 12) & 0xffffff) != 0x450008u ||
      (LoadAt<uint32_t>(d + kIn + 12) & 0xffffff) != 0x450008u) {
    return false;
  }
  const uint32_t total = __builtin_bswap16(LoadAt<uint16_t>(d + kIp + 2));
  const uint32_t ulen = __builtin_bswap16(LoadAt<uint16_t>(d + kUdp + 4));
  if (total < 28 || kIp + total > len || ulen < 8 || ulen > total - 20) return false;
  // No fragment: flags (but DF) and offset 0; then UDP to this node's port.
  if ((LoadAt<uint16_t>(d + kIp + 6) & 0xff3f) != 0 || d[kIp + 9] != IPPROTO_UDP ||
      LoadAt<uint32_t>(d + kIp + 16) != w.node_be || LoadAt<uint16_t>(d + kUdp + 2) != w.port_be) {
    return false;
  }
  const uint8_t* t = d + kTun;
  if (w.geneve ? (t[0] != 0 || LoadAt<uint16_t>(t + 2) != 0x5865) : !(t[0] & 0x08)) return false;
  const uint32_t vni = __builtin_bswap32(LoadAt<uint32_t>(t + 4)) >> 8;
  if (ReservedVni(vni)) return false;
  // The inner frame, from its own start and length.
  const uint8_t* e = d + kIn;
  const uint32_t elen = len - kIn;
  const uint32_t itotal = __builtin_bswap16(LoadAt<uint16_t>(e + 16));
  if (itotal < 28 || 14 + itotal > elen || (LoadAt<uint16_t>(e + 20) & 0xff3f) != 0) return false;
  const uint8_t proto = e[23];
  uint8_t tcp_flags = 0;
  if (proto == IPPROTO_TCP) {
    if (itotal < 40) return false;
    const uint32_t doff = uint32_t(e[34 + 12] >> 4) * 4;
    if (doff < 20 || doff > itotal - 20) return false;
    tcp_flags = e[34 + 13];
  } else if (proto == IPPROTO_UDP) {
    const uint32_t iulen = __builtin_bswap16(LoadAt<uint16_t>(e + 34 + 4));
    if (iulen < 8 || iulen > itotal - 20) return false;
  } else {
    return false;
  }
  if (!Ipv4Header20ValidV4(d + kIp) || !Ipv4Header20ValidV4(e + 14)) return false;
  // The ports as one word (two movbe loads, as PlainEndpoint's, measured
  // slower here).
  const uint32_t ports = LoadAt<uint32_t>(e + 34);
  *head = TupleHead(4, proto, __builtin_bswap16(uint16_t(ports)),
                    __builtin_bswap16(uint16_t(ports >> 16)));
  PlainMeta(meta, *head, 34, tcp_flags, vni, in_port);
  *src = LoadAt<uint32_t>(e + 26);
  *dst = LoadAt<uint32_t>(e + 30);
  return true;
}

// An endpoint's usual frame: ParsePlain's checks (untagged Ethernet, IPv4
// without options or fragmentation, TCP or UDP) over fixed offsets, reading
// words; and the source the endpoint's own address (anti-spoofing, `ep_be`
// its address as it lies in a packet, never 0). True: `meta` is what the
// general parse and the endpoint stage would have left, with `in_port`;
// `*head` the tuple's (TupleHead), `*src` and `*dst` the addresses as they
// lie in the packet, and
// `*frontend` whether the destination may be a service frontend (the
// table's filter; `services` may be null): then `admit` (service DNAT)
// follows, else the tuple is built at once. False for any other frame,
// good or bad, with nothing written: the general stages decide (and name
// the drop). `ck`: the port's IPv4 checksum verdict
// (RTE_MBUF_F_RX_IP_CKSUM_*, 0 when the port gives none). With `meta`
// null, nothing is written there: the TCP flags go to `*flags` (the
// leading frames' metadata is written only when needed, LeadingPlain4).
[[gnu::always_inline]] inline bool PlainEndpoint(const uint8_t* d, uint32_t len, uint64_t ck,
                                                 uint32_t ep_be, uint32_t identity,
                                                 const ServiceTable* services, uint16_t in_port,
                                                 PacketMeta* meta, uint64_t* head, uint32_t* src,
                                                 uint32_t* dst, bool* frontend,
                                                 uint8_t* flags = nullptr) {
  constexpr uint32_t kIp = 14, kL4 = kIp + 20;
  if (len < kL4 + 8 || (LoadAt<uint32_t>(d + 12) & 0xffffff) != 0x450008u) return false;
  const uint32_t total = __builtin_bswap16(LoadAt<uint16_t>(d + kIp + 2));
  if (total < 28 || kIp + total > len || (LoadAt<uint16_t>(d + kIp + 6) & 0xff3f) != 0) {
    return false;
  }
  const uint32_t s4 = LoadAt<uint32_t>(d + kIp + 12);
  if (s4 != ep_be) return false;  // the general stage drops it (anti-spoofing)
  const uint8_t proto = d[kIp + 9];
  uint8_t tcp_flags = 0;
  if (proto == IPPROTO_TCP) {
    if (total < 40) return false;
    const uint32_t doff = uint32_t(d[kL4 + 12] >> 4) * 4;
    if (doff < 20 || doff > total - 20) return false;
    tcp_flags = d[kL4 + 13];
  } else if (proto == IPPROTO_UDP) {
    const uint32_t ulen = __builtin_bswap16(LoadAt<uint16_t>(d + kL4 + 4));
    if (ulen < 8 || ulen > total - 20) return false;
  } else {
    return false;
  }
  // 0 (unknown, or a port that gives no verdict) first: the usual case.
  if (ck == 0 ? !Ipv4Header20ValidV4(d + kIp)
              : ck == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
                    (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && !Ipv4Header20ValidV4(d + kIp))) {
    return false;
  }
  const uint32_t d4 = LoadAt<uint32_t>(d + kIp + 16);
  *head = TupleHeadOfPorts(4, proto, PortsAt(d + kL4));
  *frontend = services != nullptr && services->MayBeFrontendOfHead(*head, d4);
  if (meta != nullptr) {
    PlainMeta(*meta, *head, kL4, tcp_flags, identity, in_port);
  } else {
    *flags = tcp_flags;
  }
  *src = s4;
  *dst = d4;
  return true;
}

// The same for an endpoint's usual IPv6 frame: untagged Ethernet, IPv6
// with TCP or UDP right after its header (no extension headers), with
// ParseIpv6's and ParseL4's checks (RFC 8200 payload length within the
// frame; TCP data offset; UDP length), from the endpoint's own IPv6 address
// (`ep_v6`); `*frontend` as for IPv4. The addresses stay where they lie
// (14 + 8 and 14 + 24).
[[gnu::always_inline]] inline bool PlainEndpoint6(const uint8_t* d, uint32_t len,
                                                  const uint8_t* ep_v6, uint32_t identity,
                                                  const ServiceTable* services, uint16_t in_port,
                                                  PacketMeta& meta, uint64_t* head,
                                                  bool* frontend) {
  constexpr uint32_t kIp = 14, kL4 = kIp + 40;
  if (len < kL4 + 8 || LoadAt<uint16_t>(d + 12) != 0xdd86 || (d[kIp] >> 4) != 6) return false;
  const uint32_t plen = __builtin_bswap16(LoadAt<uint16_t>(d + kIp + 4));
  if (kL4 + plen > len) return false;
  const uint8_t proto = d[kIp + 6];
  uint8_t tcp_flags = 0;
  if (proto == IPPROTO_TCP) {
    if (plen < 20) return false;
    const uint32_t doff = uint32_t(d[kL4 + 12] >> 4) * 4;
    if (doff < 20 || doff > plen) return false;
    tcp_flags = d[kL4 + 13];
  } else if (proto == IPPROTO_UDP) {
    if (plen < 8) return false;
    const uint32_t ulen = __builtin_bswap16(LoadAt<uint16_t>(d + kL4 + 4));
    if (ulen < 8 || ulen > plen) return false;
  } else {
    return false;
  }
  // The source is the endpoint's (anti-spoofing; the general stage drops).
  if (LoadAt<uint64_t>(d + kIp + 8) != LoadAt<uint64_t>(ep_v6) ||
      LoadAt<uint64_t>(d + kIp + 16) != LoadAt<uint64_t>(ep_v6 + 8)) {
    return false;
  }
  const uint32_t ports = PortsAt(d + kL4);
  const uint16_t dport = uint16_t(ports >> 16);
  *frontend = services != nullptr && services->MayBeFrontend6(d + kIp + 24, dport, proto);
  *head = TupleHeadOfPorts(6, proto, ports);
  PlainMeta(meta, *head, kL4, tcp_flags, identity, in_port);
  return true;
}

// A fabric frame of any other shape: PlainOuter and the inner parse, or
// the general parse and Decapsulate.
DropReason DecapsulateGeneral(rte_mbuf* m, PacketMeta& meta, const FabricConfig& f) {
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t len = rte_pktmbuf_data_len(m);
  uint32_t outer, vni;
  if (PlainOuter(d, len, f, &outer, &vni)) return ParseInner(m, meta, outer, vni);
  return ParsePacket(d, len, meta) ? Decapsulate(m, meta, f) : meta.drop;
}

bool IsIcmpError(const PacketMeta& meta) {
  if (meta.family == 4 && meta.proto == 1) {
    return meta.dport == 3 || meta.dport == 11 || meta.dport == 12;  // RFC 792
  }
  if (meta.family == 6 && meta.proto == 58) return meta.dport >= 1 && meta.dport <= 4;  // RFC 4443
  return false;
}

// The tuple an ICMP error quotes (RFC 792 / RFC 4443: the original IP
// header and at least its first 8 payload bytes), so that conntrack can
// tell whether it is related to a tracked connection.
[[gnu::noinline]] void QuotedCtKey(rte_mbuf* m, const PacketMeta& meta, CtKey& k) {
  const uint32_t len = rte_pktmbuf_data_len(m);
  const uint32_t q = meta.l4_off + 8u;  // the quoted packet
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  if (meta.family == 4 && q + 28 <= len && (d[q] >> 4) == 4) {
    uint32_t ihl = uint32_t(d[q] & 0xf) * 4;
    if (ihl >= 20 && q + ihl + 4 <= len) {
      k.proto = d[q + 9];
      std::memcpy(k.src, d + q + 12, 4);
      std::memcpy(k.dst, d + q + 16, 4);
      const uint8_t* l4 = d + q + ihl;
      k.sport = uint16_t(l4[0] << 8 | l4[1]);
      k.dport = uint16_t(l4[2] << 8 | l4[3]);
      if (k.proto == 1) k.sport = k.dport = uint16_t(l4[4] << 8 | l4[5]);
      return;
    }
  } else if (meta.family == 6 && q + 48 <= len && (d[q] >> 4) == 6) {
    k.proto = d[q + 6];  // quoted extension headers are not followed
    std::memcpy(k.src, d + q + 8, 16);
    std::memcpy(k.dst, d + q + 24, 16);
    const uint8_t* l4 = d + q + 40;
    k.sport = uint16_t(l4[0] << 8 | l4[1]);
    k.dport = uint16_t(l4[2] << 8 | l4[3]);
    if (k.proto == 58) k.sport = k.dport = uint16_t(l4[4] << 8 | l4[5]);
    return;
  }
  k.proto = 0;  // an unreadable quote matches no connection
}

// The connection tuple of a parsed IP packet (ICMP echo: id as both ports);
// for an ICMP error, the tuple of the packet it quotes. Written in 8-byte
// words and whole addresses (WriteKey4, WriteKey6).
inline void CtKeyOf(rte_mbuf* m, const PacketMeta& meta, CtKey& k) {
  uint16_t sport = meta.sport, dport = meta.dport;
  if (meta.proto == 1 || meta.proto == 58) [[unlikely]] {
    if (IsIcmpError(meta)) {
      k = CtKey();
      k.family = meta.family;
      k.proto = meta.proto;
      return QuotedCtKey(m, meta, k);
    }
    dport = sport;  // the echo identifier
  }
  const uint64_t head = TupleHead(meta.family, meta.proto, sport, dport);
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, meta.l3_off);
  if (meta.family == 4) {
    uint32_t s4, d4;
    std::memcpy(&s4, l3 + 12, 4);  // rte_ipv4_hdr: src_addr, dst_addr
    std::memcpy(&d4, l3 + 16, 4);
    WriteKey4(k, head, s4, d4);
  } else {
    WriteKey6(k, head, l3);
  }
}

// The datagram a fragment belongs to (RFC 791: the IPv4 header's id;
// RFC 8200 4.5: the fragment header's 32-bit identification), with its
// addresses. The parser has validated the headers walked here.
bool FragKeyOf(rte_mbuf* m, const PacketMeta& meta, FragKey& k) {
  k = FragKey();
  k.family = meta.family;
  k.proto = meta.proto;
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t len = rte_pktmbuf_data_len(m), l3 = meta.l3_off;
  if (meta.family == 4) {
    k.id = uint32_t(d[l3 + 4]) << 8 | d[l3 + 5];
    std::memcpy(k.src, d + l3 + 12, 4);
    std::memcpy(k.dst, d + l3 + 16, 4);
    return true;
  }
  if (meta.family != 6) return false;
  std::memcpy(k.src, d + l3 + 8, 16);
  std::memcpy(k.dst, d + l3 + 24, 16);
  uint8_t nh = d[l3 + 6];
  uint32_t p = l3 + 40;
  for (int i = 0; i <= 8 && p + 8 <= len; ++i) {
    if (nh == 44) {
      k.id = uint32_t(d[p + 4]) << 24 | uint32_t(d[p + 5]) << 16 | uint32_t(d[p + 6]) << 8 | d[p + 7];
      return true;
    }
    uint32_t hlen;
    if (nh == 0 || nh == 43 || nh == 60) {
      hlen = (uint32_t(d[p + 1]) + 1) * 8;
    } else if (nh == 51) {
      hlen = (uint32_t(d[p + 1]) + 2) * 4;
    } else {
      return false;
    }
    nh = d[p];
    p += hlen;
  }
  return false;
}

bool HasPorts(uint8_t proto) {
  return proto == 6 || proto == 17 || proto == 132 || proto == 1 || proto == 58;
}

}  // namespace

DropReason Pipeline::ServiceMatch(const Snapshot& snap, rte_mbuf* m, const PacketMeta& meta,
                                  SvcWork& sw) noexcept {
  // The key in words, as the hash reads it (CtKeyOf says why).
  ServiceKey& key = sw.frontend;
  static_assert(offsetof(ServiceKey, addr) == 4 && sizeof(ServiceKey) == 20);
  auto* p = reinterpret_cast<uint8_t*>(&key);
  const uint32_t head = uint32_t(meta.family) | uint32_t(meta.proto) << 8 | uint32_t(meta.dport) << 16;
  int32_t s;
  if (meta.family == 4) {
    uint32_t a;
    std::memcpy(&a, &rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off)->dst_addr, 4);
    const uint64_t w0 = head | uint64_t(a) << 32, zero8 = 0;
    const uint32_t zero4 = 0;
    std::memcpy(p, &w0, 8);  // (for ServiceTranslate, which reads it later)
    std::memcpy(p + 8, &zero8, 8);
    std::memcpy(p + 16, &zero4, 4);
    s = snap.services->Lookup4(head, a);  // from the registers, not the key
  } else {
    std::memcpy(p, &head, 4);
    std::memcpy(p + 4, rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off)->dst_addr, 16);
    s = snap.services->Lookup(key);
  }
  if (s < 0) return DropReason::kNone;  // not a service frontend
  // Translating a fragment would need incremental L4 checksum updates
  // (first fragment) and must not touch a later fragment's payload: not
  // supported, counted with Cilium's 157 (FRAG_NOT_SUPPORTED).
  if (meta.flags & kPktFragment) return DropReason::kFragmentationNotSupported;
  // No serving backend, or no conntrack to remember the translation.
  if (snap.services->NumBackends(s) == 0 || ct_ == nullptr) {
    return DropReason::kServiceBackendNotFound;
  }
  sw.svc = s;
  sw.active = true;
  CtKeyOf(m, meta, sw.pre);
  sw.pre_h = ct_->HashOf(sw.pre);
  ct_->Prefetch(sw.pre_h);
  return DropReason::kNone;
}

void Pipeline::ServiceTranslate(const Snapshot& snap, rte_mbuf* m, PacketMeta& meta, uint64_t now,
                                SvcWork& sw, CtResult r, int32_t pos) noexcept {
  const ServiceKey& key = sw.frontend;
  const int32_t s = sw.svc;
  sw.reverse = CtNat{CtNat::kReverse, key.family, key.port, {}};
  std::memcpy(sw.reverse.addr, key.addr, 16);
  if (r == CtResult::kForward && ct_->Nat(pos).kind == CtNat::kPinned) {
    sw.pin = ct_->Nat(pos);  // the connection keeps its backend
    sw.pinned = true;
    sw.pin_pos = pos;
  } else {
    // Maglev: Cilium's hash of the client's address, port and protocol
    // (the frontend is implied by the service; with session affinity the
    // client port is left out). Otherwise Cilium's default: a random backend.
    const uint64_t svc_ticks = snap.services->AffinityTicks(s);
    uint32_t h = snap.services->UsesMaglev(s)
                     ? snap.services->FlowHash(s, key.family, sw.pre.src,
                                               svc_ticks != 0 ? 0 : meta.sport, key.port, meta.proto)
                     : uint32_t(rte_rand());
    uint64_t ticks = affinity_ != nullptr ? svc_ticks : 0;
    int32_t bi;
    if (ticks == 0) {
      bi = int32_t(snap.services->Pick(s, h));
    } else {  // sessionAffinity ClientIP: the client's backend, if it still serves
      AffinityKey ak;
      ak.family = key.family;
      std::memcpy(ak.client, sw.pre.src, 16);
      ak.frontend = key;
      bi = affinity_->Find(ak, *snap.services, s, now);
      if (bi < 0) bi = int32_t(snap.services->Pick(s, h));
      affinity_->Remember(ak, *snap.services, s, uint32_t(bi), now + ticks);
    }
    const ServiceBackend& b = snap.services->Backend(uint32_t(bi));
    sw.pin = CtNat{CtNat::kPinned, b.family, b.port, {}};
    std::memcpy(sw.pin.addr, b.addr, 16);
    sw.pinned = false;
  }
  Rewrite(m, meta, true, sw.pin.addr, sw.pin.port);
}

Pipeline::Pipeline(RcuCell<Snapshot>& cell, uint32_t reader_id, Conntrack* ct,
                   FlowEventRing* events, AffinityTable* affinity, uint32_t verdict_cache)
    : cell_(cell),
      reader_id_(reader_id),
      ct_(ct),
      events_(events),
      affinity_(affinity),
      vcache_(verdict_cache) {
  if (g_packet_meta_offset < 0) {
    rte_panic("meshgate: a Pipeline was made before RegisterPacketMeta()\n");
  }
}

void Pipeline::Drop(const Snapshot& snap, rte_mbuf** pkts, uint16_t n, uint16_t in_port) noexcept {
  if (n == 0) return;
  auto& c = counters_.drops[in_port < kMaxPorts ? in_port : 0];
  for (uint16_t i = 0; i < n; ++i) {
    PacketMeta* meta = Meta(pkts[i]);
    ++c.by_reason[uint8_t(meta->drop)];
    if (events_ != nullptr) {
      meta->verdict = uint8_t(Verdict::kDropped);
      Event(snap, pkts[i], TrafficDirection(meta->reason_dir));
    }
  }
  rte_pktmbuf_free_bulk(pkts, n);
}

void Pipeline::Event(const Snapshot& snap, rte_mbuf* m, TrafficDirection dir) noexcept {
  if (nev_ == kBurst * 2) return;  // at most one event per packet per burst
  const PacketMeta& meta = *Meta(m);
  FlowEvent& e = ev_[nev_++];
  e = FlowEvent();
  e.tsc = rte_rdtsc();
  e.verdict = meta.verdict;
  e.drop_reason = uint8_t(meta.drop);
  e.family = meta.family;
  e.proto = meta.proto;
  e.direction = uint8_t(dir);
  e.is_reply = (meta.flags & kPktReply) ? 1 : 0;
  e.tcp_flags = meta.tcp_flags;
  e.sport = meta.sport;
  e.dport = meta.dport;
  e.in_port = meta.in_port;
  e.src_identity = meta.src_identity;
  e.dst_identity = meta.family != 0 ? RouteAt(snap, meta.aux).identity : 0;
  e.rule_id = meta.rule_id;
  if (meta.family == 4) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3_off);
    std::memcpy(e.src, &ip->src_addr, 4);
    std::memcpy(e.dst, &ip->dst_addr, 4);
  } else if (meta.family == 6) {
    auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, meta.l3_off);
    std::memcpy(e.src, ip6->src_addr, 16);
    std::memcpy(e.dst, ip6->dst_addr, 16);
  }
}

void Pipeline::FlushEvents() noexcept {
  if (nev_ == 0) return;
  uint32_t lost = events_->Enqueue(ev_, nev_);
  counters_.events += nev_ - lost;
  counters_.events_lost += lost;
  nev_ = 0;
}

uint64_t Pipeline::dropped(DropReason r) const {
  uint64_t sum = 0;
  for (const auto& d : counters_.drops) sum += d.by_reason[uint8_t(r)];
  return sum;
}

namespace {

// Whether a packet may go where `route` leads: a local address needs an
// endpoint in this snapshot (`ep`, EndpointOf the route), and only packets
// from a local endpoint may leave it (no transit for the fabric or the
// uplink).
bool RouteAllowed(PortRole role, const Route& route, uint16_t ep) {
  return route.kind == Route::kLocal ? ep != kNoEndpoint : role == PortRole::kEndpoint;
}

}  // namespace

// The checks between an allowed verdict and delivery: a way out of the
// mesh, and the TTL / hop limit of a packet that is routed here.
inline DropReason Pipeline::Admit(const Snapshot& snap, rte_mbuf* m, PacketMeta& meta,
                                  const Route& route) noexcept {
  if (route.kind == Route::kOutside && snap.uplink.port == 0xffff) {
    return DropReason::kFibLookupFailed;  // no way out of the mesh
  }
  if (route.kind != Route::kRemote && !DecrementTtl(m, meta)) return DropReason::kTtlExceeded;
  return DropReason::kNone;
}

// Rewrites a packet admitted to local endpoint `dst` and stages it for TX
// on the endpoint's port (the caller counts it forwarded).
inline void Pipeline::SendLocal(const EndpointEntry& dst, rte_mbuf* m, TxStage& out) noexcept {
  std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), dst.l2_to.data(), 12);  // dst_addr, src_addr
  out.Add(dst.port, m);
}

// Rewrites or encapsulates an admitted packet for its route (a local one
// leads to endpoint `ep`) and stages it for TX on its output port.
inline DropReason Pipeline::Send(const Snapshot& snap, rte_mbuf* m, const PacketMeta& meta,
                                 const Route& route, uint16_t ep, TxStage& out) noexcept {
  uint16_t out_port;
  if (route.kind == Route::kRemote) {
    if (snap.fabric.port == 0xffff) return DropReason::kNoTunnelEndpoint;
    if (!Encapsulate(m, meta, snap, route,
                     snap.fabric.port < kMaxPorts &&
                         (offloads_[snap.fabric.port] & kTxIpv4Cksum) != 0)) {
      return DropReason::kErrorWritingToPacket;
    }
    out_port = snap.fabric.port;
    ++counters_.encapsulated;
  } else if (route.kind == Route::kOutside) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->src_addr = snap.uplink.mac;
    eth->dst_addr = snap.uplink.gateway_mac;
    out_port = snap.uplink.port;
  } else {
    SendLocal(snap.endpoints[ep], m, out);
    ++counters_.forwarded;
    return DropReason::kNone;
  }
  out.Add(out_port, m);
  ++counters_.forwarded;
  return DropReason::kNone;
}

// The plain one-pass parses' tail for IPv4: the tuple from the words just
// read (WriteKey4; a copy from an array on the stack was a 16-byte load
// over two smaller stores, a quarter of the parse's time in perf on the
// memif link), hashed, its index bucket fetched.
[[gnu::always_inline]] inline void TrackPlain4(const Conntrack& ct, uint64_t head, uint32_t s4,
                                               uint32_t d4, CtKey& key, SlotIndex::Hash& hash) {
  WriteKey4(key, head, s4, d4);
  // (Stored and read back for the prefetch: the hash kept in registers
  // and stored field by field was one load less and measured slower on
  // the fabric's profile, alternating runs of bench pipeline.)
  hash = ct.HashOf4(head, s4, d4);
  ct.Prefetch(hash);
}

template <bool kCk, bool kPrefetch>
uint16_t Pipeline::LeadingPlain4(rte_mbuf** pkts, uint16_t n, uint64_t ck_mask, uint32_t ep_be,
                                 const ServiceTable* services, SlotIndex::Hash* ct_h) noexcept {
  const Conntrack& ct = *ct_;
  uint16_t i = 0;
  for (; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (kPrefetch && i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    uint64_t head;
    uint32_t s4, d4;
    bool frontend;
    // (No metadata: identity and in_port, 0 here, are not read.)
    if (!PlainEndpoint(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m),
                       kCk ? m->ol_flags & ck_mask : 0, ep_be, 0, services, 0, nullptr, &head,
                       &s4, &d4, &frontend, &lead_flags_[i]) ||
        frontend) {
      break;
    }
    TrackPlain4(ct, head, s4, d4, ct_keys_[i], ct_h[i]);
  }
  return i;
}

uint16_t Pipeline::LeadLocal(const EndpointEntry* endpoints, uint16_t lead, const uint32_t* cand,
                             uint64_t now, uint64_t other_expires, const VerdictTest& stands,
                             uint32_t identity, rte_mbuf* const* work, TxStage& out) noexcept {
  if (identity > CtVerdict::kIdentityMask) return 0;  // no verdict stands for it
  Conntrack* const ct = ct_;
  const VerdictTest::ForIdentity test = stands.For(identity);
  uint16_t i = 0;
  for (; i < lead; ++i) {
    int32_t pos;
    CtVerdict v;
    if (!ct->ForwardCandidate(cand[i], ct_keys_[i], now, &pos, &v) || !test(v)) break;
    rte_mbuf* m = work[i];
    const uint32_t local = v.local();
    if (local == 0 || !DecrementTtl4(m, 14)) break;
    if (v.bits & CtVerdict::kAudit) [[unlikely]] ++counters_.audited;
    ct->UpdateForward(pos, lead_flags_[i], now, other_expires);
    SendLocal(endpoints[local - 1], m, out);
  }
  return i;
}

void Pipeline::Process(const Snapshot& snap, rte_mbuf** pkts, uint16_t n, uint16_t in_port,
                       TxStage& out, uint64_t now_tsc) noexcept {
  // The metadata's offset, read once: a global would be reloaded after
  // every store through a byte pointer.
  const auto meta_of = [off = g_packet_meta_offset](rte_mbuf* m) { return Meta(m, off); };
  // The same for the conntrack table: a member is reloaded through `this`.
  Conntrack* const ct = ct_;
  rte_mbuf* drops[kBurst * 2];
  uint16_t nd = 0;
  counters_.rx += n;
  const PortRole role = in_port < kMaxPorts ? snap.role[in_port] : PortRole::kNone;
  // The next frame's data fetched while this one is parsed, unless the
  // port's PMD has just written it (kRxDataCopied).
  // (The loops below compare with prefetch_n, 0 for no prefetch: no test
  // added per packet.)
  const bool prefetch = in_port >= kMaxPorts || (offloads_[in_port] & kRxDataCopied) == 0;
  const uint16_t prefetch_n = prefetch ? n : 0;

  const uint16_t epi = role == PortRole::kEndpoint ? snap.endpoint_of_port[in_port] : kNoEndpoint;
  static const EndpointEntry kNone{};
  const EndpointEntry& src_ep = epi != kNoEndpoint ? snap.endpoints[epi] : kNone;
  // Egress policy is the source's instance's: checked for packets from a
  // local endpoint, not for packets that arrive over the fabric.
  const bool check_egress = role == PortRole::kEndpoint;

  const uint64_t now = ct == nullptr ? 0 : now_tsc != 0 ? now_tsc : rte_rdtsc();
  // Read before any lookup of this burst: a verdict cached now is stamped
  // with versions no newer than the data it was derived from.
  const uint32_t epoch = snap.classes->epoch();
  const uint32_t ipcache_version = snap.ipcache->version();
  // `ep`: EndpointOf the packet's route (meta.aux).
  auto VerdictToCache = [&](const PacketMeta& meta, Verdict v, uint16_t ep) {
    return CtVerdict{epoch, ipcache_version, meta.aux,
                     (meta.src_identity & CtVerdict::kIdentityMask) | CtVerdict::Local(ep) |
                         (check_egress ? CtVerdict::kEgress : 0u) |
                         (v == Verdict::kAudit ? CtVerdict::kAudit : 0u)};
  };
  // Bit k of `translated`: work[k] goes to a service frontend (DNAT, only
  // at an endpoint port); svc[k] holds its translation. After the parse,
  // `dnat` tells whether any packet of the burst is translated.
  SvcWork* const svc = svc_;
  uint32_t translated = 0;
  static_assert(kBurst <= 32, "a bit of `translated` per work slot");

  // Stage 1: parse; per role, the source identity and service DNAT (at a
  // source endpoint); the conntrack key, hashed, its bucket fetched.
  rte_mbuf* work[kBurst];
  AclKey keys[kBurst * 2];
  const AclKey* kp[kBurst * 2];
  CtKey* const ct_keys = ct_keys_;
  SlotIndex::Hash ct_h[kBurst];
  uint16_t nw = 0, nk = 0;
  uint16_t egress_key[kBurst], ingress_key[kBurst];
  uint16_t dnat_at[kBurst], ndnat = 0;  // work slots of packets to a service frontend
  uint16_t lead = 0;  // work[0, lead): TCP or UDP by their parse (LeadingPlain4)
  // What every role does last: fragments, service DNAT, the tuple.
  // Inlined where it is called: out of line, it took the addresses of the
  // counters it shares with the loops (nw, nd), which then lived in memory.
  auto admit = [&](rte_mbuf* m, PacketMeta* meta) __attribute__((always_inline)) {
    auto drop = [&](DropReason r) {
      meta->drop = r;
      drops[nd++] = m;
    };
    // Fragments (Cilium's fragment tracking, bpf/lib/ipv4.h): a first
    // fragment records its ports; a later one, which carries none, takes
    // them from its datagram's record, or is dropped with 175
    // (FRAG_NOT_FOUND) when the first fragment was not seen. Then it is
    // tracked and classified like any packet of its connection.
    if (meta->flags & kPktFragment) {
      FragKey fk;
      if (meta->flags & kPktFirstFragment) {
        if (ct != nullptr && FragKeyOf(m, *meta, fk) &&
            !ct->RecordFragment(fk, meta->sport, meta->dport, now)) {
          ++counters_.fragments_untracked;  // its later fragments will be 175s
        }
      } else {
        uint16_t sp, dp;
        if (ct == nullptr || !FragKeyOf(m, *meta, fk) || !ct->FindFragment(fk, now, &sp, &dp)) {
          return drop(DropReason::kFirstFragmentNotFound);
        }
        meta->sport = sp;
        meta->dport = dp;
        if (HasPorts(meta->proto)) meta->flags &= uint8_t(~kPktNoPorts);
      }
    }
    if (role == PortRole::kEndpoint && snap.services != nullptr && !(meta->flags & kPktNoPorts) &&
        (meta->proto == 6 || meta->proto == 17 || meta->proto == 132)) {
      svc[nw].active = false;
      DropReason r = ServiceMatch(snap, m, *meta, svc[nw]);
      if (r != DropReason::kNone) return drop(r);
      if (svc[nw].active) {  // translated, and its tuple built, after the loop
        translated |= 1u << nw;
        dnat_at[ndnat++] = nw;
        work[nw++] = m;
        return;
      }
    }
    if (ct != nullptr) {
      CtKeyOf(m, *meta, ct_keys[nw]);
      ct_h[nw] = ct->HashOf(ct_keys[nw]);
      ct->Prefetch(ct_h[nw]);
    }
    work[nw++] = m;
  };
  // The plain one-pass parses' tail (TrackPlain4).
  auto track4 = [&](rte_mbuf* m, uint64_t head, uint32_t s4, uint32_t d4) {
    if (ct != nullptr) TrackPlain4(*ct, head, s4, d4, ct_keys[nw], ct_h[nw]);
    work[nw++] = m;
  };
  // The same for an IPv6 frame: the addresses copied from the packet.
  auto track6 = [&](rte_mbuf* m, uint64_t head) {
    if (ct != nullptr) {
      WriteKey6(ct_keys[nw], head, rte_pktmbuf_mtod_offset(m, const uint8_t*, 14));
      ct_h[nw] = ct->HashOf(ct_keys[nw]);
      ct->Prefetch(ct_h[nw]);
    }
    work[nw++] = m;
  };
  if (role == PortRole::kFabric) {
    // Parse and decapsulate in one step: the usual frame in one pass over
    // fixed offsets (PlainFabric), its tuple built and hashed from the
    // words just read; any other frame the general way.
    const FabricWire wire(snap.fabric);
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = pkts[i];
      if (i + 1 < prefetch_n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
      PacketMeta* meta = meta_of(m);
      uint64_t head;
      uint32_t s4, d4;
      if (PlainFabric(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), wire, in_port,
                      *meta, &head, &s4, &d4)) {
        constexpr uint16_t kOuter = 14 + 20 + 8 + 8;  // rte_pktmbuf_adj, its checks made
        m->data_off = uint16_t(m->data_off + kOuter);
        m->data_len = uint16_t(m->data_len - kOuter);
        m->pkt_len -= kOuter;
        track4(m, head, s4, d4);
        continue;
      }
      meta->in_port = in_port & 0x3f;  // kept by every parse
      if (DropReason r = DecapsulateGeneral(m, *meta, snap.fabric); r != DropReason::kNone) {
        meta->drop = r;
        drops[nd++] = m;
        continue;
      }
      // Decapsulated: the source identity is the VNI.
      admit(m, meta);
    }
  } else {
    // The NIC's IPv4 checksum verdict is taken for ports without tunnels:
    // on the fabric, a NIC that parses VXLAN reports the inner header's.
    const bool rx_ck = in_port < kMaxPorts && (offloads_[in_port] & kRxIpv4Cksum) != 0;
    // An endpoint's usual frame in one pass (PlainEndpoint, PlainEndpoint6);
    // any other frame, and every frame of another role, the general way.
    const bool plain = role == PortRole::kEndpoint && src_ep.v4 != 0;
    const bool plain6 = role == PortRole::kEndpoint && src_ep.has_v6;
    const uint32_t ep_be = __builtin_bswap32(src_ep.v4);
    const ServiceTable* const services = snap.services.get();
    uint16_t i = 0;
    // The leading usual IPv4 frames (in the steady state, the whole burst)
    // in a function of their own (LeadingPlain4); from the first other
    // frame, or a service's, the loop below takes the rest.
    if (plain && ct != nullptr) {
      const uint64_t ck = RTE_MBUF_F_RX_IP_CKSUM_MASK;
      i = rx_ck ? prefetch ? LeadingPlain4<true, true>(pkts, n, ck, ep_be, services, ct_h)
                           : LeadingPlain4<true, false>(pkts, n, ck, ep_be, services, ct_h)
          : prefetch ? LeadingPlain4<false, true>(pkts, n, 0, ep_be, services, ct_h)
                     : LeadingPlain4<false, false>(pkts, n, 0, ep_be, services, ct_h);
      std::copy_n(pkts, i, work);
      nw = lead = i;
    }
    for (; i < n; ++i) {
      rte_mbuf* m = pkts[i];
      if (i + 1 < prefetch_n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
      PacketMeta* meta = meta_of(m);
      bool frontend;
      uint64_t head;
      if (plain) {
        uint32_t s4, d4;
        if (PlainEndpoint(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m),
                          rx_ck ? m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK : 0, ep_be,
                          src_ep.identity, services, in_port, meta, &head, &s4, &d4,
                          &frontend)) {
          if (frontend) {  // perhaps a service's: the general tail translates it
            admit(m, meta);
            continue;
          }
          track4(m, head, s4, d4);
          continue;
        }
      }
      if (plain6 && PlainEndpoint6(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m),
                                   src_ep.v6.data(), src_ep.identity, services, in_port, *meta,
                                   &head, &frontend)) {
        if (frontend) {
          admit(m, meta);
          continue;
        }
        track6(m, head);
        continue;
      }
      if (!ParseMbuf(m, rx_ck, in_port)) {
        drops[nd++] = m;
        continue;
      }
      if (role == PortRole::kEndpoint) {
        if (meta->flags & kPktArp) {
          if (ArpReply(m, *meta, src_ep, snap.router_mac)) {
            out.Add(in_port, m);
            ++counters_.arp_replies;
          } else {
            ++counters_.arp_ignored;
            rte_pktmbuf_free(m);
          }
          continue;
        }
        // IPv6 neighbour discovery (RFC 4861) comes from link-local
        // addresses: answered or consumed before anti-spoofing.
        if (meta->family == 6 && meta->proto == 58 && meta->dport >= 133 && meta->dport <= 137) {
          if (meta->dport == 135 && NdpReply(m, *meta, src_ep, snap.router_mac)) {
            out.Add(in_port, m);
            ++counters_.ndp_replies;
          } else {
            ++counters_.ndp_ignored;
            rte_pktmbuf_free(m);
          }
          continue;
        }
        // Anti-spoofing: an endpoint sends from its own addresses only.
        if (!SourceIsEndpoint(m, *meta, src_ep)) {
          meta->drop = DropReason::kInvalidSourceIp;
          drops[nd++] = m;
          continue;
        }
        meta->src_identity = src_ep.identity;
      } else if (role == PortRole::kUplink) {
        // From outside the mesh: the source identity is the ipcache's
        // (longest prefix, CIDR identities; unknown is world). A mesh
        // address arriving from outside is spoofed.
        const Route& src = RouteAt(snap, IpcacheSlot(m, *meta, snap, Addr::kSource));
        if (src.kind != Route::kOutside) {
          meta->drop = DropReason::kInvalidSourceIp;
          drops[nd++] = m;
          continue;
        }
        meta->src_identity = src.identity;
      } else {
        meta->drop = DropReason::kUnknownL3TargetAddress;
        drops[nd++] = m;
        continue;
      }
      admit(m, meta);
    }
  }

  // Service frontends: their pins (the connection's tuple before
  // translation) looked up together, their buckets fetched as each was
  // matched; then each is translated (the pinned backend or a new pick)
  // and its translated tuple built.
  const bool dnat = ndnat > 0;
  if (dnat) {
    CtKey pre[kBurst];
    SlotIndex::Hash pre_h[kBurst];
    CtResult pre_r[kBurst];
    int32_t pre_pos[kBurst];
    for (uint16_t k = 0; k < ndnat; ++k) {
      pre[k] = svc[dnat_at[k]].pre;
      pre_h[k] = svc[dnat_at[k]].pre_h;
    }
    ct->LookupHashed(pre, pre_h, ndnat, now, pre_r, pre_pos);
    for (uint16_t k = 0; k < ndnat; ++k) {
      const uint16_t w = dnat_at[k];
      PacketMeta* meta = meta_of(work[w]);
      ServiceTranslate(snap, work[w], *meta, now, svc[w], pre_r[k], pre_pos[k]);
      CtKeyOf(work[w], *meta, ct_keys[w]);
      ct_h[w] = ct->HashOf(ct_keys[w]);
      ct->Prefetch(ct_h[w]);
    }
  }

  // Stage 2: conntrack for the burst: replies of allowed connections skip
  // the policy (CT_REPLY); forward packets are checked every time. Each
  // packet's first candidate record is fetched for the whole burst first.
  uint32_t cand[kBurst];
  if (ct != nullptr && nw > 0) ct->Candidates(ct_h, nw, cand);
  // Stage 2b, the usual packet. A forward packet of a connection whose
  // verdict was cached under the current class epoch and ipcache version,
  // for the same source identity, takes the route and the verdict from
  // its entry: nothing they were derived from has changed since
  // (conntrack.h, CtVerdict).
  //
  // The leading packets that are such (in the steady state, the whole
  // burst: each the forward tuple of its first candidate, live, with a
  // verdict that stands) skip the policy stages: one pass that compares
  // each with its record, checks the verdict and delivers the packet.
  // From the first packet that is not such (new, a reply, an ICMP error, a
  // connection further on in the index, a stale verdict), the rest of the
  // burst is looked up in full and takes the general stages, which stage
  // for TX after the one pass: packets leave in arrival order either way.
  const uint64_t stamp = CtVerdict::Stamp(epoch, ipcache_version);
  const uint64_t other_expires = ct != nullptr ? ct->OtherExpiry(now) : 0;
  const VerdictTest stands(stamp, check_egress);
  uint16_t first = 0;  // work[0, first) went the one-pass way
  uint16_t local_sent = 0;  // of them, sent to a local endpoint (SendLocal)
  // A leading frame's metadata (LeadingPlain4 left it unwritten): what the
  // general parse and the endpoint stage would have left.
  auto lead_meta = [&](uint16_t i) {
    uint64_t head;
    std::memcpy(&head, &ct_keys[i], 8);
    PlainMeta(*meta_of(work[i]), head, 14 + 20, lead_flags_[i], src_ep.identity, in_port);
  };
  // work[i] the one-pass way; false: not such (the general stages take it
  // and the rest). `kLead`: a leading frame (i < lead): TCP or UDP from
  // this port's endpoint, IPv4 without options, its metadata unwritten.
  // Those to a local endpoint LeadLocal delivers, their metadata left so
  // (nothing reads it); for any other route or a drop it is written first.
  auto one = [&]<bool kLead>(uint16_t i) __attribute__((always_inline)) {
    int32_t pos;
    CtVerdict v;
    if (!ct->ForwardCandidate(cand[i], ct_keys[i], now, &pos, &v)) return false;
    rte_mbuf* m = work[i];
    PacketMeta* meta = meta_of(m);
    if constexpr (kLead) {
      // (LeadLocal took the frames before the first one it could not: not
      // to a local endpoint, a TTL of 1, or not the one pass's at all;
      // from there on each leading frame comes here.)
      if (!stands(v, src_ep.identity)) return false;
      lead_meta(i);  // and on as any frame
    } else {
      // Related: the general stage marks it.
      if (IsIcmpError(*meta)) return false;
      if (!stands(v, meta->src_identity)) return false;
    }
    meta->aux = v.nh;
    // The route: to the local endpoint cached with the verdict (allowed
    // from any port; Admit checks only the TTL), else the ipcache's.
    DropReason r;
    uint16_t ep;
    const Route* route = nullptr;
    if (const uint32_t local = v.local(); local != 0) [[likely]] {
      ep = uint16_t(local - 1);
      r = DecrementTtl(m, *meta) ? DropReason::kNone : DropReason::kTtlExceeded;
    } else {
      route = &RouteAt(snap, v.nh);
      ep = EndpointOf(snap, *route);
      r = RouteAllowed(role, *route, ep) ? Admit(snap, m, *meta, *route)
                                          : DropReason::kNoMatchingLocalContainer;
    }
    if (r == DropReason::kNone) {
      // The parse left reason, rule and direction at none / 0 / unknown,
      // what a cached verdict reports; only the verdict itself is set.
      if (v.bits & CtVerdict::kAudit) [[unlikely]] {
        meta->verdict = uint8_t(Verdict::kAudit);
        ++counters_.audited;
      } else {
        meta->verdict = uint8_t(Verdict::kForwarded);
      }
      ct->UpdateForward(pos, meta->tcp_flags, now, other_expires);
      if (dnat && (translated >> i & 1) && svc[i].pinned) {
        ct->Update(svc[i].pin_pos, CtResult::kForward, meta->tcp_flags, now);
      }
      if (route == nullptr) {
        SendLocal(snap.endpoints[ep], m, out);
        ++local_sent;
      } else {
        r = Send(snap, m, *meta, *route, ep, out);
      }
    }
    if (r != DropReason::kNone) {
      meta->drop = r;
      drops[nd++] = m;
    }
    return true;
  };
  if (ct != nullptr) {
    if (lead > 0) {
      first = LeadLocal(snap.endpoints.data(), lead, cand, now, other_expires, stands,
                        src_ep.identity, work, out);
      local_sent = first;
    }
    while (first < lead && one.template operator()<true>(first)) ++first;
    if (first == lead) {
      while (first < nw && one.template operator()<false>(first)) ++first;
    }
    // The leading frames left go on to the general stages.
    for (uint16_t i = first; i < lead; ++i) lead_meta(i);
  }
  counters_.forwarded += local_sent;
  counters_.verdicts_cached += first;
  if (first == nw) {  // nothing was new: no reservation
    Drop(snap, drops, nd, in_port);
    if (events_ != nullptr) FlushEvents();
    return;
  }
  // The rest of the burst, looked up in full.
  CtResult ctres[kBurst];
  int32_t ctpos[kBurst];
  uint16_t nnew = nw - first;
  // Records for the connections those not found may become, fetched while
  // their policy is decided; the ones left are given back at the end.
  Conntrack::Reservation rsv;
  if (ct != nullptr) {
    nnew = ct->LookupCandidates(ct_keys, ct_h, cand, first, nw, now, ctres, ctpos);
    if (nnew > 0) ct->Reserve(rsv, nnew);
  } else {
    for (uint16_t i = first; i < nw; ++i) ctres[i] = CtResult::kNew;
  }
  // New connections look up the ipcache and the source's class: start those
  // misses for the whole burst before the first lookup waits on one.
  for (int step = 0; step < 2 && nnew > 0; ++step) {
    for (uint16_t i = first; i < nw; ++i) {
      if (ctres[i] != CtResult::kNew) continue;
      const PacketMeta* meta = meta_of(work[i]);
      if (meta->family != 4) continue;
      const uint32_t dst = __builtin_bswap32(
          rte_pktmbuf_mtod_offset(work[i], const rte_ipv4_hdr*, meta->l3_off)->dst_addr);
      if (step == 0) {
        snap.ipcache->PrefetchBucket4(dst);
        snap.classes->Prefetch(meta->src_identity);
      } else {
        snap.ipcache->PrefetchSlot4(dst);
      }
    }
  }
  // Stage 2c: the destination's route, from the cached verdict where it
  // stands, else from the ipcache. An ICMP error quoting a tracked
  // connection (either direction) is related: it skips the policy like a
  // reply (Cilium's CT_RELATED).
  bool icmp_error[kBurst], gone[kBurst];
  uint8_t cached[kBurst];  // 0: not cached; else 1, | 2 for an AUDIT verdict
  uint16_t dst_ep[kBurst];  // EndpointOf each packet's route (general path)
  uint16_t ncached = 0;
  for (uint16_t i = first; i < nw; ++i) {
    PacketMeta* meta = meta_of(work[i]);
    icmp_error[i] = IsIcmpError(*meta);
    cached[i] = 0;
    if (icmp_error[i] && ctres[i] != CtResult::kNew) {
      meta->flags |= kPktRelated;
      ctres[i] = CtResult::kReply;  // bypass; never refreshes or creates
    }
    if (ctres[i] == CtResult::kForward) {
      const CtVerdict v = ct->Verdict(ctpos[i]);
      if (stands(v, meta->src_identity)) {
        meta->aux = v.nh;
        cached[i] = (v.bits & CtVerdict::kAudit) ? 3 : 1;
        ++ncached;
      }
    }
  }
  counters_.verdicts_cached += ncached;
  for (uint16_t i = first; i < nw; ++i) {
    rte_mbuf* m = work[i];
    PacketMeta* meta = meta_of(m);
    gone[i] = false;
    uint32_t nh = cached[i] != 0 ? meta->aux : IpcacheSlot(m, *meta, snap, Addr::kDestination);
    const Route& route = RouteAt(snap, nh);
    dst_ep[i] = EndpointOf(snap, route);
    if (!RouteAllowed(role, route, dst_ep[i])) {
      meta->drop = DropReason::kNoMatchingLocalContainer;
      drops[nd++] = m;
      gone[i] = true;
      continue;
    }
    meta->aux = nh;
  }

  // Stage 3: policy keys. Egress at the source endpoint (peer = the
  // destination's identity); ingress at a local destination (peer = the
  // source's identity, from the endpoint or from the VNI).
  for (uint16_t i = first; i < nw; ++i) {
    egress_key[i] = ingress_key[i] = kNoKey;
    if (gone[i] || cached[i] != 0 || ctres[i] == CtResult::kReply) continue;
    const PacketMeta* meta = meta_of(work[i]);
    const Route& route = RouteAt(snap, meta->aux);
    if (check_egress) {
      classifier::MakeAclKey(keys[nk], meta->proto, src_ep.subject_class,
                             snap.classes->Lookup(route.identity), meta->dport,
                             Direction::kEgress);
      kp[nk] = &keys[nk];
      egress_key[i] = nk++;
    }
    if (route.kind == Route::kLocal) {
      const EndpointEntry& dst = snap.endpoints[dst_ep[i]];
      classifier::MakeAclKey(keys[nk], meta->proto, dst.subject_class,
                             snap.classes->Lookup(meta->src_identity), meta->dport,
                             Direction::kIngress);
      kp[nk] = &keys[nk];
      ingress_key[i] = nk++;
    }
  }

  // Stage 4: the verdicts. Keys this worker's verdict cache holds for the
  // snapshot's table are answered from it; the rest go to rte_acl in one
  // classify call, and their verdicts are cached.
  PolicyResult* const res = res_;
  if (nk > 0) {
    const classifier::AclTable& acl = *snap.acl;
    if (vcache_.enabled()) {
      uint32_t set[kBurst * 2];
      uint16_t miss[kBurst * 2], nm = 0;
      for (uint16_t k = 0; k < nk; ++k) {
        set[k] = vcache_.SetOf(keys[k]);
        vcache_.Prefetch(set[k]);
      }
      for (uint16_t k = 0; k < nk; ++k) {
        if (const PolicyResult* r = vcache_.Find(acl, set[k], keys[k])) {
          res[k] = *r;
          continue;
        }
        kp[nm] = &keys[k];
        miss[nm++] = k;
      }
      counters_.acl_cache_hits += nk - nm;
      if (nm > 0) {
        PolicyResult decided[kBurst * 2];
        acl.Classify(kp, nm, decided);
        for (uint16_t j = 0; j < nm; ++j) {
          res[miss[j]] = decided[j];
          vcache_.Insert(acl, set[miss[j]], keys[miss[j]], decided[j]);
        }
      }
    } else {
      acl.Classify(kp, nk, res);
    }
  }

  // Stage 5: verdicts, conntrack, rewrite or encapsulate, stage for TX.
  static const PolicyResult kPass{Verdict::kForwarded, classifier::PolicyReason::kNone, 0, 0};
  static const CtNat kNoNat{};
  for (uint16_t i = first; i < nw; ++i) {
    if (gone[i]) continue;
    rte_mbuf* m = work[i];
    PacketMeta* meta = meta_of(m);
    const PolicyResult cached_result{
        cached[i] & 2 ? Verdict::kAudit : Verdict::kForwarded,
        classifier::PolicyReason::kNone, 0, 0};
    const PolicyResult& eg = cached[i] != 0           ? cached_result
                             : egress_key[i] != kNoKey ? res[egress_key[i]]
                                                       : kPass;
    const PolicyResult& in = ingress_key[i] != kNoKey ? res[ingress_key[i]] : kPass;
    // Egress decides first; then ingress; an AUDIT anywhere is reported.
    const PolicyResult& decided = eg.verdict == Verdict::kForwarded ? in : eg;
    if (ctres[i] == CtResult::kReply && !(meta->flags & kPktRelated)) meta->flags |= kPktReply;
    meta->verdict = uint8_t(decided.verdict);
    meta->reason = uint8_t(decided.reason);
    meta->rule_id = decided.rule_id;
    const TrafficDirection dir = &decided == &eg && egress_key[i] != kNoKey
                                     ? TrafficDirection::kEgress
                                     : ingress_key[i] != kNoKey ? TrafficDirection::kIngress
                                                                : TrafficDirection::kUnknown;
    meta->reason_dir = uint8_t(dir);
    if (decided.verdict == Verdict::kDropped) {
      meta->drop = DropReason(uint8_t(decided.reason));
      drops[nd++] = m;
      continue;
    }
    if (eg.verdict == Verdict::kAudit || in.verdict == Verdict::kAudit) ++counters_.audited;
    const Route& route = RouteAt(snap, meta->aux);
    if (DropReason r = Admit(snap, m, *meta, route); r != DropReason::kNone) {
      meta->drop = r;
      drops[nd++] = m;
      continue;
    }
    if (ct != nullptr && !icmp_error[i]) {  // errors are not connections
      if (ctres[i] == CtResult::kNew) {
        int32_t pos, pin;
        if (!ct->Create(ct_keys[i], meta->tcp_flags, now, &pos,
                        dnat && (translated >> i & 1) ? svc[i].reverse : kNoNat, &ct_h[i], &rsv) ||
            (dnat && (translated >> i & 1) && !svc[i].pinned &&
             !ct->Create(svc[i].pre, meta->tcp_flags, now, &pin, svc[i].pin, &svc[i].pre_h,
                         &rsv))) {
          meta->drop = DropReason::kCtMapInsertionFailed;
          drops[nd++] = m;
          continue;
        }
        ++counters_.ct_new;
        ct->CacheVerdict(pos, VerdictToCache(*meta, decided.verdict, dst_ep[i]));
        if (events_ != nullptr) Event(snap, m, dir);  // the verdict of a new connection
      } else {
        ct->Update(ctpos[i], ctres[i], meta->tcp_flags, now);
        if (ctres[i] == CtResult::kForward && cached[i] == 0) {
          ct->CacheVerdict(ctpos[i], VerdictToCache(*meta, decided.verdict, dst_ep[i]));
        }
        if (ctres[i] == CtResult::kReply) {
          ++counters_.ct_replies;
          const CtNat& nat = ct->Nat(ctpos[i]);
          if (nat.kind == CtNat::kReverse && !(meta->flags & kPktRelated)) {
            if (meta->flags & kPktFragment) {  // as ServiceMatch: not translated
              meta->drop = DropReason::kFragmentationNotSupported;
              drops[nd++] = m;
              continue;
            }
            Rewrite(m, *meta, false, nat.addr, nat.port);  // from the service frontend
          }
        }
      }
      if (dnat && (translated >> i & 1) && svc[i].pinned) {  // keep the pin alive with its connection
        ct->Update(svc[i].pin_pos, CtResult::kForward, meta->tcp_flags, now);
      }
    }
    if (DropReason r = Send(snap, m, *meta, route, dst_ep[i], out); r != DropReason::kNone) {
      meta->drop = r;
      drops[nd++] = m;
    }
  }
  if (rsv.n > 0) ct->Release(rsv);
  Drop(snap, drops, nd, in_port);
  if (events_ != nullptr) FlushEvents();
}

void Pipeline::Flush(TxStage& out, uint16_t queue) noexcept {
  for (uint32_t used = out.used; used != 0; used &= used - 1) {
    const uint16_t p = uint16_t(__builtin_ctz(used));
    const uint16_t n = out.n[p];
    if (n == 0) continue;  // (a caller that emptied it by hand)
    uint16_t sent = rte_eth_tx_burst(p, queue, out.pkts[p].data(), n);
    counters_.tx += sent;
    if (sent < n) {
      counters_.tx_full += n - sent;
      rte_pktmbuf_free_bulk(out.pkts[p].data() + sent, n - sent);
    }
    out.n[p] = 0;
  }
  out.used = 0;
}

uint32_t Pipeline::PollOnce(const uint16_t* ports, uint16_t nports, uint16_t queue) noexcept {
  const Snapshot* snap = cell_.Read();  // once per iteration
  uint32_t total = 0;
  if (snap != nullptr) {
    const uint64_t start = rte_rdtsc();
    rte_mbuf* pkts[kBurst];
    for (uint16_t i = 0; i < nports; ++i) {
      uint16_t n = rte_eth_rx_burst(ports[i], queue, pkts, kBurst);
      if (n == 0) continue;
      total += n;
      Process(*snap, pkts, n, ports[i], stage_, start);  // the iteration's TSC: time enough
      Flush(stage_, queue);
    }
    if (total != 0) {
      counters_.busy_polls++;
      counters_.busy_cycles += rte_rdtsc() - start;
    }
  }
  cell_.Quiescent(reader_id_);  // the loop's fixed point: no snapshot held
  return total;
}

}  // namespace meshgate::dataplane
