#include "dataplane/packet.h"

#include <rte_ether.h>
#include <rte_errno.h>
#include <rte_ip.h>

#include <cstring>

#include "identity/strutil.h"

namespace meshgate::dataplane {

// The dynamic field offset is per process by DPDK's design (like the EAL);
// every instance in the process shares it.
int g_packet_meta_offset = -1;

absl::Status RegisterPacketMeta() {
  static const rte_mbuf_dynfield kDesc = {
      .name = "meshgate_packet_meta",
      .size = sizeof(PacketMeta),
      .align = alignof(PacketMeta),
      .flags = 0,
  };
  int off = rte_mbuf_dynfield_register(&kDesc);
  if (off < 0) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("rte_mbuf_dynfield_register: ", rte_strerror(rte_errno)));
  }
  g_packet_meta_offset = off;
  return absl::OkStatus();
}

namespace {

inline uint16_t Be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86DD, kEthArp = 0x0806;
constexpr uint16_t kEthVlan = 0x8100, kEthQinQ = 0x88A8;
constexpr int kMaxIpv6ExtHeaders = 8;

bool Fail(PacketMeta& m, DropReason r) {
  m.drop = r;
  return false;
}

// L4 header at [p, end): ports, flags. Truncation is Cilium's 135.
[[gnu::always_inline]] inline bool ParseL4(const uint8_t* d, uint32_t p, uint32_t end,
                                           PacketMeta& m) {
  m.l4_off = uint16_t(p);
  switch (m.proto) {
    case 6: {  // TCP, RFC 9293
      if (p + 20 > end) return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      uint32_t doff = uint32_t(d[p + 12] >> 4) * 4;
      if (doff < 20 || p + doff > end) return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      m.sport = Be16(d + p);
      m.dport = Be16(d + p + 2);
      m.tcp_flags = d[p + 13];
      return true;
    }
    case 17: {  // UDP, RFC 768
      if (p + 8 > end) return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      uint32_t ulen = Be16(d + p + 4);
      // A first fragment's UDP length covers the whole datagram.
      if (ulen < 8 || (p + ulen > end && !(m.flags & kPktFirstFragment))) {
        return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      }
      m.sport = Be16(d + p);
      m.dport = Be16(d + p + 2);
      return true;
    }
    case 132:  // SCTP common header, RFC 9260
      if (p + 12 > end) return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      m.sport = Be16(d + p);
      m.dport = Be16(d + p + 2);
      return true;
    case 1:    // ICMP, RFC 792
    case 58: { // ICMPv6, RFC 4443
      bool v6 = m.proto == 58;
      if ((m.family == 6) != v6) {  // ICMPv6 over IPv4 or ICMP over IPv6
        m.flags |= kPktNoPorts;
        return true;
      }
      if (p + 8 > end) return Fail(m, DropReason::kCtTruncatedOrInvalidHeader);
      uint8_t type = d[p];
      m.dport = type;  // Cilium's policy "port" for ICMP is the type
      bool echo = v6 ? (type == 128 || type == 129) : (type == 8 || type == 0);
      m.sport = echo ? Be16(d + p + 4) : 0;
      return true;
    }
    default:
      m.flags |= kPktNoPorts;
      return true;
  }
}

[[gnu::always_inline]] inline bool ParseIpv4(const uint8_t* d, uint32_t len, uint32_t off,
                                             bool cksum_verified, PacketMeta& m) {
  // RFC 1812 5.2.2: length, version, header length, total length, checksum.
  if (off + 20 > len) return Fail(m, DropReason::kInvalidPacket);
  uint8_t vhl = d[off];
  if ((vhl >> 4) != 4) return Fail(m, DropReason::kInvalidPacket);
  uint32_t ihl = uint32_t(vhl & 0xf) * 4;
  if (ihl < 20 || off + ihl > len) return Fail(m, DropReason::kInvalidPacket);
  uint32_t total = Be16(d + off + 2);
  if (total < ihl || off + total > len) return Fail(m, DropReason::kInvalidPacket);
  if (!cksum_verified && Ipv4HeaderSum(d + off, ihl) != 0xffff) {
    return Fail(m, DropReason::kInvalidPacket);
  }
  m.family = 4;
  m.l3_off = uint16_t(off);
  m.proto = d[off + 9];
  if (ihl > 20) m.flags |= kPktIpOptions;
  uint16_t frag = Be16(d + off + 6);
  bool more = frag & 0x2000;
  uint16_t frag_off = frag & 0x1fff;
  if (more || frag_off != 0) {
    m.flags |= kPktFragment;
    if (frag_off == 0) {
      m.flags |= kPktFirstFragment;
    } else {
      m.flags |= kPktNoPorts;  // no L4 header in a later fragment
      m.l4_off = uint16_t(off + ihl);
      return true;
    }
  }
  return ParseL4(d, off + ihl, off + total, m);
}

bool ParseIpv6(const uint8_t* d, uint32_t len, uint32_t off, PacketMeta& m) {
  if (off + 40 > len) return Fail(m, DropReason::kInvalidPacket);
  if ((d[off] >> 4) != 6) return Fail(m, DropReason::kInvalidPacket);
  uint32_t plen = Be16(d + off + 4);
  uint8_t nh = d[off + 6];
  // Jumbograms (payload length 0, RFC 2675) are not supported.
  if (off + 40 + plen > len || (plen == 0 && nh != 59)) {
    return Fail(m, DropReason::kInvalidPacket);
  }
  m.family = 6;
  m.l3_off = uint16_t(off);
  uint32_t p = off + 40, end = off + 40 + plen;
  for (int i = 0;; ++i) {
    if (i > kMaxIpv6ExtHeaders) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
    switch (nh) {
      case 0:    // hop-by-hop: only first (RFC 8200 4.1)
        if (i != 0) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        [[fallthrough]];
      case 43:   // routing
      case 60: { // destination options
        if (p + 8 > end) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        uint32_t hlen = (uint32_t(d[p + 1]) + 1) * 8;
        if (p + hlen > end) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        m.flags |= kPktIpOptions;
        nh = d[p];
        p += hlen;
        continue;
      }
      case 51: {  // AH, RFC 4302: length in 4-octet units, minus 2
        if (p + 8 > end) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        uint32_t hlen = (uint32_t(d[p + 1]) + 2) * 4;
        if (p + hlen > end) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        m.flags |= kPktIpOptions;
        nh = d[p];
        p += hlen;
        continue;
      }
      case 44: {  // fragment
        if (p + 8 > end) return Fail(m, DropReason::kInvalidIpv6ExtensionHeader);
        uint16_t fo = Be16(d + p + 2);
        m.flags |= kPktFragment | kPktIpOptions;
        nh = d[p];
        p += 8;
        if ((fo >> 3) != 0) {
          m.proto = nh;
          m.l4_off = uint16_t(p);
          m.flags |= kPktNoPorts;
          return true;
        }
        m.flags |= kPktFirstFragment;
        continue;
      }
      case 59:  // no next header
        m.proto = 59;
        m.l4_off = uint16_t(p);
        m.flags |= kPktNoPorts;
        return true;
      default:
        m.proto = nh;
        return ParseL4(d, p, end, m);
    }
  }
}

}  // namespace

namespace {

// The usual shape, TCP or UDP in IPv4 without options or fragments after
// an untagged Ethernet header: the checks of the general parse below, over
// fixed offsets. False for any other shape, good or bad, without a word
// written: the general parse decides (and names the drop reason).
[[gnu::always_inline]] inline bool ParsePlain(const uint8_t* d, uint32_t len, PacketMeta& m,
                                              bool ip_cksum_verified, uint8_t in_port) {
  constexpr uint32_t kIp = 14, kL4 = kIp + 20;
  if (len < kL4 + 8 || d[12] != 0x08 || d[13] != 0x00 || d[kIp] != 0x45) return false;
  const uint32_t total = Be16(d + kIp + 2);
  // 28: a UDP header; the frame holds it (kIp + total <= len).
  if (total < 28 || kIp + total > len || (d[kIp + 6] & 0x3f) != 0 || d[kIp + 7] != 0) {
    return false;
  }
  const uint8_t proto = d[kIp + 9];
  uint8_t tcp_flags = 0;
  if (proto == 6) {
    if (total < 40) return false;
    const uint32_t doff = uint32_t(d[kL4 + 12] >> 4) * 4;
    if (doff < 20 || doff > total - 20) return false;
    tcp_flags = d[kL4 + 13];
  } else if (proto == 17) {
    const uint32_t ulen = Be16(d + kL4 + 4);
    if (ulen < 8 || ulen > total - 20) return false;
  } else {
    return false;
  }
  if (!ip_cksum_verified && !Ipv4Header20ValidV4(d + kIp)) return false;
  m = PacketMeta();
  m.in_port = in_port & 0x3f;
  m.l3_off = kIp;
  m.l4_off = kL4;
  m.sport = Be16(d + kL4);
  m.dport = Be16(d + kL4 + 2);
  m.family = 4;
  m.proto = proto;
  m.tcp_flags = tcp_flags;
  return true;
}

// The whole metadata is written: the parse's findings and `in_port`.
inline bool Parse(const uint8_t* d, uint32_t len, PacketMeta& m, bool ip_cksum_verified,
                  uint8_t in_port) noexcept {
  if (ParsePlain(d, len, m, ip_cksum_verified, in_port)) return true;
  m = PacketMeta();
  m.in_port = in_port & 0x3f;
  if (len < RTE_ETHER_HDR_LEN) return Fail(m, DropReason::kInvalidPacket);
  uint16_t et = Be16(d + 12);
  uint32_t off = RTE_ETHER_HDR_LEN;
  for (int tags = 0; (et == kEthVlan || et == kEthQinQ); ++tags) {
    if (tags == 2 || off + 4 > len) return Fail(m, DropReason::kInvalidPacket);
    m.flags |= kPktVlan;
    et = Be16(d + off + 2);
    off += 4;
  }
  switch (et) {
    case kEthArp:  // RFC 826, Ethernet/IPv4 only
      if (off + 28 > len || Be16(d + off) != 1 || Be16(d + off + 2) != kEthIpv4 ||
          d[off + 4] != 6 || d[off + 5] != 4) {
        return Fail(m, DropReason::kInvalidPacket);
      }
      m.flags |= kPktArp;
      m.l3_off = uint16_t(off);
      return true;
    case kEthIpv4:
      return ParseIpv4(d, len, off, ip_cksum_verified, m);
    case kEthIpv6:
      return ParseIpv6(d, len, off, m);
    default:
      return Fail(m, DropReason::kUnsupportedL3Protocol);
  }
}

}  // namespace

bool ParsePacket(const uint8_t* d, uint32_t len, PacketMeta& m, bool ip_cksum_verified) noexcept {
  return Parse(d, len, m, ip_cksum_verified, m.in_port);
}

bool ParseMbuf(rte_mbuf* m, bool rx_ip_cksum, uint16_t in_port) noexcept {
  PacketMeta* meta = Meta(m);
  const uint64_t ck = rx_ip_cksum ? m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK : 0;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD) {
    *meta = PacketMeta();
    meta->in_port = in_port & 0x3f;
    meta->drop = DropReason::kInvalidPacket;
    return false;
  }
  // Headers must sit in the first segment (PMDs put >= 2 KiB there).
  return Parse(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), *meta,
               ck == RTE_MBUF_F_RX_IP_CKSUM_GOOD, uint8_t(in_port));
}

uint16_t ParseBurst(rte_mbuf** pkts, uint16_t n, rte_mbuf** drops, uint16_t* ndrops,
                    bool rx_ip_cksum, uint16_t in_port) noexcept {
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    if (ParseMbuf(m, rx_ip_cksum, in_port)) {
      pkts[kept++] = m;
    } else {
      drops[(*ndrops)++] = m;
    }
  }
  return kept;
}

}  // namespace meshgate::dataplane
