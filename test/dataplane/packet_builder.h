// Builds Ethernet frames byte by byte for packet-in/packet-out tests.
#pragma once

#include <arpa/inet.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace meshgate::test {

using Bytes = std::vector<uint8_t>;

inline void Put16(Bytes& b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
inline void Put32(Bytes& b, uint32_t v) {
  Put16(b, v >> 16);
  Put16(b, v & 0xffff);
}
inline Bytes Cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline Bytes Tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02, uint8_t doff_words = 5) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put32(b, 1);  // seq
  Put32(b, 0);  // ack
  b.push_back(uint8_t(doff_words << 4));
  b.push_back(flags);
  Put16(b, 65535);
  Put16(b, 0);  // checksum (not validated by the parser)
  Put16(b, 0);
  b.resize(b.size() + (doff_words > 5 ? (doff_words - 5) * 4 : 0), 1);  // NOP options
  return b;
}
inline Bytes Udp(uint16_t sport, uint16_t dport, size_t payload = 4) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put16(b, uint16_t(8 + payload));
  Put16(b, 0);
  b.resize(b.size() + payload, 0xab);
  return b;
}
inline Bytes Icmp(uint8_t type, uint8_t code = 0, uint16_t id = 0x1234) {
  Bytes b = {type, code, 0, 0};
  Put16(b, id);
  Put16(b, 1);  // sequence
  return b;
}
inline Bytes Sctp(uint16_t sport, uint16_t dport) {
  Bytes b;
  Put16(b, sport);
  Put16(b, dport);
  Put32(b, 0x1);
  Put32(b, 0);
  return b;
}

inline uint32_t V4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return ntohl(a.s_addr);
}

// An IPv4 header (with `options`, padded to 4 bytes) + payload; valid checksum.
inline Bytes Ipv4(uint32_t src, uint32_t dst, uint8_t proto, const Bytes& payload,
                  Bytes options = {}, uint16_t frag = 0, uint8_t ttl = 64) {
  while (options.size() % 4) options.push_back(0);
  Bytes b;
  uint8_t ihl = uint8_t(5 + options.size() / 4);
  b.push_back(uint8_t(0x40 | ihl));
  b.push_back(0);
  Put16(b, uint16_t(ihl * 4 + payload.size()));
  Put16(b, 0x1111);  // id
  Put16(b, frag);
  b.push_back(ttl);
  b.push_back(proto);
  Put16(b, 0);
  Put32(b, src);
  Put32(b, dst);
  b.insert(b.end(), options.begin(), options.end());
  // rte_raw_cksum sums 16-bit words as stored, so the complement is stored
  // as-is (as callers of rte_ipv4_cksum do).
  uint16_t ck = uint16_t(~rte_raw_cksum(b.data(), b.size()));
  std::memcpy(&b[10], &ck, 2);
  Bytes out = Cat(b, payload);
  // A whole TCP segment gets a valid checksum (NAT updates it incrementally
  // and tests verify it after); UDP keeps 0, "no checksum" over IPv4.
  if (proto == 6 && frag == 0 && payload.size() >= 20) {
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(out.data());
    uint8_t* l4 = out.data() + ihl * 4;
    l4[16] = l4[17] = 0;
    uint16_t l4ck = rte_ipv4_udptcp_cksum(ip, l4);
    std::memcpy(l4 + 16, &l4ck, 2);
  }
  return out;
}

// An IPv6 header; `payload` includes any extension headers.
inline Bytes Ipv6(const char* src, const char* dst, uint8_t next, const Bytes& payload,
                  uint8_t hop_limit = 64) {
  Bytes b = {0x60, 0, 0, 0};
  Put16(b, uint16_t(payload.size()));
  b.push_back(next);
  b.push_back(hop_limit);
  uint8_t a[16];
  inet_pton(AF_INET6, src, a);
  b.insert(b.end(), a, a + 16);
  inet_pton(AF_INET6, dst, a);
  b.insert(b.end(), a, a + 16);
  Bytes out = Cat(b, payload);
  // TCP and UDP right after the fixed header get a valid checksum.
  const size_t ck = next == 6 ? 16 : next == 17 ? 6 : 0;
  if (ck != 0 && payload.size() >= (next == 6 ? 20u : 8u)) {
    auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(out.data());
    uint8_t* l4 = out.data() + 40;
    l4[ck] = l4[ck + 1] = 0;
    uint16_t l4ck = rte_ipv6_udptcp_cksum(ip6, l4);
    std::memcpy(l4 + ck, &l4ck, 2);
  }
  return out;
}
// A generic 8-byte-unit extension header (HBH, routing, dest options).
inline Bytes Ext(uint8_t next, uint8_t len8 = 0) {
  Bytes b = {next, len8};
  b.resize(8 + len8 * 8, 0);
  if (b.size() > 2) b[2] = 1;  // PadN-ish filler
  return b;
}
inline Bytes FragHdr(uint8_t next, uint16_t offset8, bool more) {
  Bytes b = {next, 0};
  Put16(b, uint16_t(offset8 << 3 | (more ? 1 : 0)));
  Put32(b, 0xabcd);
  return b;
}

inline Bytes Eth(uint16_t ethertype, const Bytes& payload, std::vector<uint16_t> vlans = {}) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  for (size_t i = 0; i < vlans.size(); ++i) {
    Put16(b, i == 0 && vlans.size() == 2 ? 0x88A8 : 0x8100);
    Put16(b, vlans[i]);
  }
  Put16(b, ethertype);
  return Cat(b, payload);
}

inline Bytes Arp(uint16_t op, uint32_t sender, uint32_t target) {
  Bytes b;
  Put16(b, 1);
  Put16(b, 0x0800);
  b.push_back(6);
  b.push_back(4);
  Put16(b, op);
  Bytes mac = {0x02, 0, 0, 0, 0, 0x01};
  b.insert(b.end(), mac.begin(), mac.end());
  Put32(b, sender);
  b.insert(b.end(), 6, 0);
  Put32(b, target);
  return b;
}

// `f` with an 802.1Q tag (VLAN `vlan`) after its MAC addresses.
inline Bytes WithVlanTag(Bytes f, uint16_t vlan = 7) {
  const uint8_t t[4] = {0x81, 0x00, uint8_t(vlan >> 8), uint8_t(vlan)};
  f.insert(f.begin() + 12, t, t + 4);
  return f;
}

// Sets the checksum of the IPv4 header at `ip` right after a change.
inline void RefreshIpv4Checksum(Bytes& f, size_t ip) {
  f[ip + 10] = f[ip + 11] = 0;
  const uint16_t ck = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(&f[ip]));
  std::memcpy(&f[ip + 10], &ck, 2);
}

// Copies `b` into a new mbuf from `pool` (nullptr if the pool is empty).
inline rte_mbuf* ToMbuf(rte_mempool* pool, const Bytes& b) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  char* p = rte_pktmbuf_append(m, uint16_t(b.size()));
  if (p == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(p, b.data(), b.size());
  return m;
}

}  // namespace meshgate::test
