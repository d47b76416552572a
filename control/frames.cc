#include "control/frames.h"

#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_sctp.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cstring>

namespace meshgate::control {

using identity::Family;
using identity::IpAddr;

uint8_t ProtoNumber(const std::string& p) {
  if (p == "UDP") return IPPROTO_UDP;
  if (p == "SCTP") return IPPROTO_SCTP;
  if (p == "ICMP") return IPPROTO_ICMP;
  if (p == "ICMPv6") return IPPROTO_ICMPV6;
  return IPPROTO_TCP;
}

int IcmpReplyType(uint8_t proto, uint8_t type) {
  if (proto == IPPROTO_ICMP) {
    switch (type) {
      case 8: return 0;
      case 13: return 14;
      case 15: return 16;
      case 17: return 18;
      default: return -1;
    }
  }
  return type == 128 ? 129 : -1;
}


rte_mbuf* BuildFrame(rte_mempool* pool, const rte_ether_addr& smac, const rte_ether_addr& dmac,
                     const Pkt& p) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  bool v6 = p.src.family == Family::kIpv6;
  uint16_t l4len = 0;
  switch (p.proto) {
    case IPPROTO_TCP: l4len = sizeof(rte_tcp_hdr); break;
    case IPPROTO_UDP: l4len = sizeof(rte_udp_hdr) + 8; break;
    case IPPROTO_SCTP: l4len = sizeof(rte_sctp_hdr) + 20; break;  // INIT / INIT ACK chunk
    default: l4len = 16; break;                                    // ICMP header + 8 bytes
  }
  uint16_t l3len = v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr);
  uint16_t len = sizeof(rte_ether_hdr) + l3len + l4len;
  auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
  if (d == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(d, 0, len);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(d);
  eth->src_addr = smac;
  eth->dst_addr = dmac;
  eth->ether_type = rte_cpu_to_be_16(v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
  uint8_t* l3 = d + sizeof(rte_ether_hdr);
  uint8_t* l4 = l3 + l3len;
  rte_ipv4_hdr* ip4 = nullptr;
  rte_ipv6_hdr* ip6 = nullptr;
  if (v6) {
    ip6 = reinterpret_cast<rte_ipv6_hdr*>(l3);
    ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
    ip6->payload_len = rte_cpu_to_be_16(l4len);
    ip6->proto = p.proto;
    ip6->hop_limits = 64;
    std::memcpy(ip6->src_addr, p.src.bytes.data(), 16);
    std::memcpy(ip6->dst_addr, p.dst.bytes.data(), 16);
  } else {
    ip4 = reinterpret_cast<rte_ipv4_hdr*>(l3);
    ip4->version_ihl = RTE_IPV4_VHL_DEF;
    ip4->total_length = rte_cpu_to_be_16(l3len + l4len);
    ip4->time_to_live = 64;
    ip4->next_proto_id = p.proto;
    std::memcpy(&ip4->src_addr, p.src.bytes.data(), 4);
    std::memcpy(&ip4->dst_addr, p.dst.bytes.data(), 4);
    ip4->hdr_checksum = rte_ipv4_cksum(ip4);
  }
  auto l4sum = [&]() { return v6 ? rte_ipv6_udptcp_cksum(ip6, l4) : rte_ipv4_udptcp_cksum(ip4, l4); };
  switch (p.proto) {
    case IPPROTO_TCP: {
      auto* t = reinterpret_cast<rte_tcp_hdr*>(l4);
      t->src_port = rte_cpu_to_be_16(p.sport);
      t->dst_port = rte_cpu_to_be_16(p.dport);
      t->sent_seq = rte_cpu_to_be_32(1000);
      t->recv_ack = rte_cpu_to_be_32((p.tcp_flags & RTE_TCP_ACK_FLAG) ? 1001 : 0);
      t->data_off = uint8_t((sizeof(rte_tcp_hdr) / 4) << 4);
      t->tcp_flags = p.tcp_flags;
      t->rx_win = rte_cpu_to_be_16(65535);
      t->cksum = l4sum();
      break;
    }
    case IPPROTO_UDP: {
      auto* u = reinterpret_cast<rte_udp_hdr*>(l4);
      u->src_port = rte_cpu_to_be_16(p.sport);
      u->dst_port = rte_cpu_to_be_16(p.dport);
      u->dgram_len = rte_cpu_to_be_16(l4len);
      u->dgram_cksum = l4sum();
      break;
    }
    case IPPROTO_SCTP: {
      auto* s = reinterpret_cast<rte_sctp_hdr*>(l4);
      s->src_port = rte_cpu_to_be_16(p.sport);
      s->dst_port = rte_cpu_to_be_16(p.dport);
      uint8_t* chunk = l4 + sizeof(rte_sctp_hdr);
      chunk[0] = p.tcp_flags;  // chunk type: 1 INIT, 2 INIT ACK, 0 DATA
      chunk[3] = 20;           // chunk length
      break;
    }
    default: {  // ICMP / ICMPv6 echo-style: type, code, checksum, id, seq
      l4[0] = uint8_t(p.dport);
      l4[4] = uint8_t(p.sport >> 8);
      l4[5] = uint8_t(p.sport);
      l4[7] = 1;
      uint16_t ck = p.proto == IPPROTO_ICMP ? uint16_t(~rte_raw_cksum(l4, l4len)) : l4sum();
      std::memcpy(l4 + 2, &ck, 2);
      break;
    }
  }
  return m;
}

// Parses what the runner needs from a delivered frame (untagged Ethernet,
// IPv4 or IPv6 without extension headers).
std::optional<Pkt> ParseFrame(const rte_mbuf* m) {
  const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m);
  if (len < sizeof(rte_ether_hdr)) return std::nullopt;
  uint16_t et = uint16_t(d[12] << 8 | d[13]);
  const uint8_t* l3 = d + sizeof(rte_ether_hdr);
  uint32_t left = len - sizeof(rte_ether_hdr);
  Pkt p;
  const uint8_t* l4;
  if (et == RTE_ETHER_TYPE_IPV4 && left >= 20) {
    uint32_t ihl = (l3[0] & 0xf) * 4u;
    if (ihl < 20 || left < ihl + 8) return std::nullopt;
    p.src = IpAddr::V4(uint32_t(l3[12]) << 24 | l3[13] << 16 | l3[14] << 8 | l3[15]);
    p.dst = IpAddr::V4(uint32_t(l3[16]) << 24 | l3[17] << 16 | l3[18] << 8 | l3[19]);
    p.proto = l3[9];
    l4 = l3 + ihl;
  } else if (et == RTE_ETHER_TYPE_IPV6 && left >= 48) {
    p.src.family = p.dst.family = Family::kIpv6;
    std::memcpy(p.src.bytes.data(), l3 + 8, 16);
    std::memcpy(p.dst.bytes.data(), l3 + 24, 16);
    p.proto = l3[6];
    l4 = l3 + 40;
  } else {
    return std::nullopt;
  }
  if (IsIcmp(p.proto)) {
    p.dport = l4[0];
    p.sport = uint16_t(l4[4] << 8 | l4[5]);
  } else {
    p.sport = uint16_t(l4[0] << 8 | l4[1]);
    p.dport = uint16_t(l4[2] << 8 | l4[3]);
    if (p.proto == IPPROTO_TCP) p.tcp_flags = l4[13];
  }
  return p;
}

}  // namespace meshgate::control
