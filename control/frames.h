// Test frames: what the scenario runner and `meshgate vm` send and expect.
// Builds complete Ethernet/IPv4|IPv6/TCP|UDP|SCTP|ICMP frames with correct
// checksums (SCTP's CRC32c is left 0: meshgate does not check it) and parses
// delivered ones. Control side only; one frame at a time, not a fast path.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <netinet/in.h>

#include <optional>
#include <string>

#include "identity/address.h"

namespace meshgate::control {

// IANA number of TCP | UDP | SCTP | ICMP | ICMPv6 (TCP for anything else).
uint8_t ProtoNumber(const std::string& p);
inline bool IsIcmp(uint8_t proto) { return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6; }
// The echo-style answer to an ICMP request type, or -1 when it has none.
int IcmpReplyType(uint8_t proto, uint8_t type);

// One L3/L4 packet as the runner sends and sees it.
struct Pkt {
  identity::IpAddr src, dst;
  uint8_t proto = IPPROTO_TCP;
  uint16_t sport = 0, dport = 0;  // ICMP: sport = identifier, dport = type
  uint8_t tcp_flags = 0;          // TCP flags; SCTP: the chunk type
};

rte_mbuf* BuildFrame(rte_mempool* pool, const rte_ether_addr& smac, const rte_ether_addr& dmac,
                     const Pkt& p);
// Untagged Ethernet, IPv4 or IPv6 without extension headers; nullopt else.
std::optional<Pkt> ParseFrame(const rte_mbuf* m);

}  // namespace meshgate::control
