// Frames the benchmarks build: the VXLAN encapsulation a peer node puts
// around a pod's frame (Cilium's tunnel mode: UDP 8472, the source identity
// in the VNI). Benchmarks only.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstdint>
#include <cstring>

#include "dataplane/snapshot.h"  // kVxlanPort

namespace meshgate::dataplane {

inline constexpr uint16_t kVxlanOuterLen = 14 + 20 + 8 + 8;  // Ethernet, IPv4, UDP, VXLAN

// Writes the outer headers at `p` for an inner frame of `inner_len` bytes
// at p + kVxlanOuterLen: MAC addresses 0 (the caller sets them), IPv4 from
// `peer` to `node` (host order) with its checksum, UDP from `sport` to
// 8472, VXLAN with `vni`.
inline void WriteVxlanOuter(uint8_t* p, uint32_t peer, uint32_t node, uint16_t inner_len,
                            uint16_t sport, uint32_t vni) {
  std::memset(p, 0, kVxlanOuterLen);
  p[12] = 0x08;  // IPv4
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + 14);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(uint16_t(kVxlanOuterLen - 14 + inner_len));
  ip->time_to_live = 64;
  ip->next_proto_id = 17;
  ip->src_addr = rte_cpu_to_be_32(peer);
  ip->dst_addr = rte_cpu_to_be_32(node);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(p + 34);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(kVxlanPort);
  udp->dgram_len = rte_cpu_to_be_16(uint16_t(kVxlanOuterLen - 34 + inner_len));
  p[42] = 0x08;  // VNI present
  p[46] = uint8_t(vni >> 16);
  p[47] = uint8_t(vni >> 8);
  p[48] = uint8_t(vni);
}

}  // namespace meshgate::dataplane
