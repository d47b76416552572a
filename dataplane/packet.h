// Packet parsing into per-packet metadata that travels in the mbuf.
//
// One pass over Ethernet (up to two 802.1Q/802.1ad tags), ARP, IPv4 (with
// options and fragments), IPv6 (with extension headers), TCP, UDP, SCTP,
// ICMP and ICMPv6. Every read is bounds-checked against the first segment's
// data length: a malformed or truncated packet gets a Cilium drop reason in
// its metadata, never a read past the buffer. Validation follows RFC 1812
// 5.2.2 for IPv4 (length, version, header length, total length, header
// checksum) and RFC 8200 for IPv6 (payload length, extension header chain).
// The usual shape (untagged IPv4 without options or fragments, TCP or UDP)
// is checked first over fixed offsets with the same checks; any other
// shape, good or bad, goes through the general parse, which decides.
//
// Metadata lives in an mbuf dynamic field registered once per process
// (RegisterPacketMeta). Later stages read what parsing found and add
// identity and verdict; nothing is parsed twice.
//
// Thread-safety: ParseBurst is reentrant; each packet belongs to the calling
// lcore. Hot path: no allocation, no log, no lock.
#pragma once

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "dataplane/drop.h"

namespace meshgate::dataplane {

enum PacketFlags : uint8_t {
  kPktArp = 1 << 0,          // an ARP packet (l3_off points at it)
  kPktFragment = 1 << 1,     // part of a fragmented datagram
  kPktFirstFragment = 1 << 2,
  kPktIpOptions = 1 << 3,    // IPv4 options or IPv6 extension headers seen
  kPktVlan = 1 << 4,
  kPktNoPorts = 1 << 5,      // L4 ports unknown (non-first fragment, other proto)
  kPktReply = 1 << 6,        // a reply of a tracked connection (set by conntrack)
  kPktRelated = 1 << 7,      // an ICMP error about a tracked connection (conntrack)
};

// 28 bytes, 4-aligned, in the mbuf's dynamic field area (dynfield1: 36
// bytes at offset 92 in DPDK 22.11). It leaves the 8-aligned 8 bytes at
// offset 120 free for the Rx timestamp field that drivers such as net_pcap
// register at probe: a 32-byte, 8-aligned field made net_pcap refuse to
// attach ("Failed to register Rx timestamp field"). What parsing does not
// keep can be read from the frame: the innermost VLAN tag is the 2 bytes at
// l3_off - 4 (kPktVlan), an ICMP code the byte at l4_off + 1.
struct alignas(4) PacketMeta {
  uint16_t l3_off = 0;  // from the start of the frame
  uint16_t l4_off = 0;
  uint16_t sport = 0;   // host order; ICMP echo: the identifier
  uint16_t dport = 0;   // host order; ICMP/ICMPv6: the type (Cilium's policy port)
  uint8_t family = 0;   // 4, 6; 0 for ARP and drops before L3
  uint8_t proto = 0;    // L4 protocol after IPv6 extension headers
  uint8_t flags = 0;    // PacketFlags
  uint8_t tcp_flags = 0;
  uint8_t in_port : 6 = 0;     // < kMaxPorts (32)
  uint8_t reason_dir : 2 = 0;  // TrafficDirection of the policy decision
  DropReason drop = DropReason::kNone;
  uint8_t verdict = 0;        // classifier::Verdict
  uint8_t reason = 0;         // classifier::PolicyReason
  uint32_t src_identity = 0;  // set by the identity stage
  uint32_t rule_id = 0;       // the policy rule that decided
  uint32_t aux = 0;           // the route (an index into Snapshot::routes)
};
static_assert(sizeof(PacketMeta) == 28);

// The ones' complement sum of an IPv4 header (`len` a multiple of 4),
// folded to 16 bits: 0xffff when its checksum is right (RFC 1071). Sums
// 32-bit words in 64 bits and folds (2^16 = 1 mod 0xffff), the same result
// as rte_raw_cksum's 16-bit loop in a quarter of the additions.
inline uint16_t Ipv4HeaderSum(const uint8_t* p, uint32_t len) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < len; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    s += w;
  }
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffu) + (s >> 16);
  s = (s & 0xffffu) + (s >> 16);
  return uint16_t(s);
}

// Whether a 20-byte IPv4 header's checksum is right: Ipv4HeaderSum(p, 20)
// == 0xffff, without the folds. Two 64-bit words and a 32-bit one added
// with the end-around carry give a number congruent to the header's sum
// modulo 2^64 - 1, a multiple of 2^16 - 1; the folded sum of a header that
// is not all zeros is 0xffff exactly when that number is a multiple of
// 0xffff (one multiply by the compiler's reciprocal, not four folds).
// On x86-64 the end-around carries are the carry flag's (add, adc, adc
// 0: GCC spelled the C version's carry tests as flag reads through spare
// registers, which the parse loops then spilled). The last adc cannot
// carry: the one before carries only when its result is below 2^32 + 1.
[[gnu::always_inline]] inline uint64_t Ipv4Header20Sum64(const uint8_t* p) {
  uint64_t a, b, s;
  uint32_t c;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 8, 8);
  std::memcpy(&c, p + 16, 4);
#if defined(__x86_64__) && defined(__GNUC__)
  s = a;
  asm("add %[b], %[s]\n\tadc %[c], %[s]\n\tadc $0, %[s]"
      : [s] "+r"(s)
      : [b] "rm"(b), [c] "r"(uint64_t(c))
      : "cc");
#else
  s = a + b;
  s += s < b;
  s += c;
  s += s < c;
#endif
  return s;
}
[[gnu::always_inline]] inline bool Ipv4Header20Valid(const uint8_t* p) {
  const uint64_t s = Ipv4Header20Sum64(p);
  return s != 0 && s % 0xffff == 0;
}
// The same for a header whose first byte the caller has checked to be
// 0x45 (version 4, 20 bytes): one of its words is not zero, so neither is
// the sum (end-around carry addition gives 0 only for all-zero addends),
// and the test of it is left out.
[[gnu::always_inline]] inline bool Ipv4Header20ValidV4(const uint8_t* p) {
  return Ipv4Header20Sum64(p) % 0xffff == 0;
}

// Registers the dynamic field (idempotent). Call after EAL init, before any
// packet is parsed. Returns the EAL's error when the mbuf has no room.
absl::Status RegisterPacketMeta();

// The field's offset; valid after RegisterPacketMeta.
extern int g_packet_meta_offset;

inline PacketMeta* Meta(rte_mbuf* m, int offset) {
  return RTE_MBUF_DYNFIELD(m, offset, PacketMeta*);
}
inline PacketMeta* Meta(rte_mbuf* m) { return Meta(m, g_packet_meta_offset); }

// Parses `n` packets. Good packets are compacted to the front of `pkts`;
// bad ones are appended to `drops` (with meta->drop set). Returns the number
// of good packets; `*ndrops` grows by the number dropped.
// `rx_ip_cksum`: the port validates IPv4 header checksums
// (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) and the packets carry no tunnel the NIC
// might have parsed instead: a packet its driver marks
// RTE_MBUF_F_RX_IP_CKSUM_GOOD is not summed again, one marked BAD is
// dropped (Cilium 134, INVALID_PACKET, as a failed software check); any
// other mark (unknown, none) is checked in software.
// Every packet's metadata is written whole, its `in_port` set to `in_port`.
uint16_t ParseBurst(rte_mbuf** pkts, uint16_t n, rte_mbuf** drops, uint16_t* ndrops,
                    bool rx_ip_cksum = false, uint16_t in_port = 0) noexcept;
// One packet as ParseBurst parses each: false (meta->drop set) when it
// must be dropped.
bool ParseMbuf(rte_mbuf* m, bool rx_ip_cksum, uint16_t in_port) noexcept;

// Parses one packet into `meta` (all of it but `in_port`, which it keeps);
// returns false (with meta.drop set) if it must be dropped. Exposed for
// tests and for decapsulated inner frames.
// `ip_cksum_verified`: the outermost IPv4 header's checksum was checked by
// the NIC (ParseBurst).
bool ParsePacket(const uint8_t* data, uint32_t len, PacketMeta& meta,
                 bool ip_cksum_verified = false) noexcept;

}  // namespace meshgate::dataplane
