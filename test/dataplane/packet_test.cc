// Packet parsing: every edge case gets the right metadata or the right
// Cilium drop reason, and nothing reads past the buffer (the truncation
// sweep runs every prefix of every frame; build with -Db_sanitize=address to
// have the sanitizer watch it).
#include <catch2/catch.hpp>

#include <tuple>

#include "dataplane/drop.h"
#include "dataplane/packet.h"
#include "test/dataplane/packet_builder.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {

PacketMeta Parse(const Bytes& b, bool* ok = nullptr) {
  PacketMeta m;
  bool r = ParsePacket(b.data(), uint32_t(b.size()), m);
  if (ok) *ok = r;
  return m;
}

const uint32_t kA = V4("10.1.0.10"), kB = V4("10.1.0.20");

}  // namespace

TEST_CASE("IPv4 TCP, UDP, SCTP, ICMP: offsets, ports, flags", "[packet]") {
  bool ok = false;
  auto m = Parse(Eth(0x0800, Ipv4(kA, kB, 6, Tcp(40000, 80, 0x02))), &ok);
  REQUIRE(ok);
  CHECK(m.family == 4);
  CHECK(m.proto == 6);
  CHECK(m.l3_off == 14);
  CHECK(m.l4_off == 34);
  CHECK(m.sport == 40000);
  CHECK(m.dport == 80);
  CHECK(m.tcp_flags == 0x02);
  m = Parse(Eth(0x0800, Ipv4(kA, kB, 17, Udp(5353, 53))), &ok);
  CHECK((ok && m.proto == 17 && m.dport == 53));
  m = Parse(Eth(0x0800, Ipv4(kA, kB, 132, Sctp(1, 9))), &ok);
  CHECK((ok && m.proto == 132 && m.dport == 9));
  m = Parse(Eth(0x0800, Ipv4(kA, kB, 1, Icmp(8, 0, 0x4242))), &ok);
  CHECK(ok);
  CHECK(m.dport == 8);    // the ICMP type is the policy "port"
  CHECK(m.sport == 0x4242);  // echo identifier
  Bytes unreach = Eth(0x0800, Ipv4(kA, kB, 1, Icmp(3, 1)));
  m = Parse(unreach, &ok);
  CHECK((ok && m.dport == 3 && m.sport == 0));
  CHECK(unreach[m.l4_off + 1] == 1);  // the code, read from the frame
  m = Parse(Eth(0x0800, Ipv4(kA, kB, 47, Bytes(20, 0))), &ok);  // GRE: no ports
  CHECK((ok && (m.flags & kPktNoPorts) && m.dport == 0));
}

TEST_CASE("IPv4 options, TCP options, Ethernet padding", "[packet]") {
  bool ok = false;
  auto m = Parse(Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 2, 0x10, 8), {0x94, 0x04, 0, 0})), &ok);
  REQUIRE(ok);
  CHECK((m.flags & kPktIpOptions));
  CHECK(m.l4_off == 14 + 24);
  // 60-byte minimum frame: padding after the IP datagram is fine.
  Bytes small = Eth(0x0800, Ipv4(kA, kB, 17, Udp(1, 2, 0)));
  small.resize(60, 0);
  m = Parse(small, &ok);
  CHECK(ok);
}

TEST_CASE("IPv4 validation, RFC 1812 5.2.2: each failure is a counted drop", "[packet]") {
  Bytes good = Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 80)));
  auto expect_drop = [](Bytes b, DropReason r) {
    bool ok = true;
    auto m = Parse(b, &ok);
    CHECK_FALSE(ok);
    CHECK(int(m.drop) == int(r));
  };
  Bytes b = good;
  b[14] = 0x55;  // version 5
  expect_drop(b, DropReason::kInvalidPacket);
  b = good;
  b[14] = 0x44;  // IHL 4 < 5
  expect_drop(b, DropReason::kInvalidPacket);
  b = good;
  b[24] ^= 0xff;  // checksum
  expect_drop(b, DropReason::kInvalidPacket);
  b = good;
  b[16] = 0x0f;  // total length > frame
  b[24] = b[25] = 0;
  expect_drop(b, DropReason::kInvalidPacket);
  // TCP data offset < 5, and beyond the datagram: truncated header (135).
  expect_drop(Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 2, 0x02, 4))),
              DropReason::kCtTruncatedOrInvalidHeader);
  Bytes t = Tcp(1, 2, 0x02, 15);
  t.resize(24);
  expect_drop(Eth(0x0800, Ipv4(kA, kB, 6, t)), DropReason::kCtTruncatedOrInvalidHeader);
  // UDP length field larger than the datagram.
  Bytes u = Udp(1, 2, 4);
  u[5] = 200;
  expect_drop(Eth(0x0800, Ipv4(kA, kB, 17, u)), DropReason::kCtTruncatedOrInvalidHeader);
  expect_drop(Eth(0x0800, Ipv4(kA, kB, 1, Bytes{8, 0, 0})),
              DropReason::kCtTruncatedOrInvalidHeader);
  // Unknown ethertype: Cilium's "Unsupported L3 protocol".
  expect_drop(Eth(0x88cc, Bytes(40, 0)), DropReason::kUnsupportedL3Protocol);
  expect_drop(Bytes(13, 0), DropReason::kInvalidPacket);
}

TEST_CASE("IPv4 fragments: the first has ports, later ones have none", "[packet]") {
  bool ok = false;
  auto m = Parse(Eth(0x0800, Ipv4(kA, kB, 17, Udp(7, 53, 16), {}, 0x2000)), &ok);  // MF
  REQUIRE(ok);
  CHECK((m.flags & kPktFragment));
  CHECK((m.flags & kPktFirstFragment));
  CHECK(m.dport == 53);
  m = Parse(Eth(0x0800, Ipv4(kA, kB, 17, Bytes(16, 0), {}, 3)), &ok);  // offset 24
  REQUIRE(ok);
  CHECK((m.flags & kPktFragment));
  CHECK_FALSE((m.flags & kPktFirstFragment));
  CHECK((m.flags & kPktNoPorts));
}

TEST_CASE("802.1Q and QinQ tags", "[packet]") {
  bool ok = false;
  auto tci = [](const Bytes& f, const PacketMeta& m) {  // the innermost tag
    return (uint16_t(f[m.l3_off - 4] << 8) | f[m.l3_off - 3]) & 0xfff;
  };
  Bytes one = Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 443)), {100});
  auto m = Parse(one, &ok);
  REQUIRE(ok);
  CHECK((m.flags & kPktVlan));
  CHECK(tci(one, m) == 100);
  CHECK(m.l3_off == 18);
  Bytes two = Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 443)), {10, 200});
  m = Parse(two, &ok);
  REQUIRE(ok);
  CHECK(m.l3_off == 22);
  CHECK(tci(two, m) == 200);
  Bytes three = Eth(0x8100, Bytes{0, 7, 0x81, 0, 0, 8, 0x08, 0x00}, {5, 6});
  m = Parse(three, &ok);
  CHECK_FALSE(ok);  // more than two tags
}

TEST_CASE("ARP requests are recognised; malformed ARP is dropped", "[packet][arp]") {
  bool ok = false;
  auto m = Parse(Eth(0x0806, Arp(1, kA, kB)), &ok);
  REQUIRE(ok);
  CHECK((m.flags & kPktArp));
  CHECK(m.l3_off == 14);
  Bytes bad = Arp(1, kA, kB);
  bad[4] = 8;  // hardware length
  m = Parse(Eth(0x0806, bad), &ok);
  CHECK_FALSE(ok);
  m = Parse(Eth(0x0806, Bytes(10, 0)), &ok);
  CHECK_FALSE(ok);
}

TEST_CASE("IPv6 with extension headers, fragments, ICMPv6", "[packet][ipv6]") {
  bool ok = false;
  auto m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 6, Tcp(1000, 8080))), &ok);
  REQUIRE(ok);
  CHECK(m.family == 6);
  CHECK(m.l4_off == 54);
  CHECK(m.dport == 8080);
  // hop-by-hop -> dest options -> routing -> UDP
  Bytes chain = Cat(Cat(Cat(Ext(60), Ext(43, 1)), Ext(17)), Udp(9, 53));
  m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 0, chain)), &ok);
  REQUIRE(ok);
  CHECK(m.proto == 17);
  CHECK(m.dport == 53);
  CHECK(m.l4_off == 54 + 8 + 16 + 8);
  CHECK((m.flags & kPktIpOptions));
  // first fragment carries ports; a later one does not
  m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 44, Cat(FragHdr(6, 0, true), Tcp(5, 22)))), &ok);
  CHECK((ok && m.dport == 22 && (m.flags & kPktFirstFragment)));
  m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 44, Cat(FragHdr(6, 10, false), Bytes(16, 0)))), &ok);
  CHECK((ok && (m.flags & kPktNoPorts) && m.proto == 6));
  m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 58, Icmp(128, 0, 77))), &ok);
  CHECK((ok && m.dport == 128 && m.sport == 77));
  m = Parse(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 59, Bytes(8, 0))), &ok);
  CHECK((ok && m.proto == 59));
}

TEST_CASE("IPv6 malformed: each failure is a counted drop", "[packet][ipv6]") {
  auto expect_drop = [](Bytes b, DropReason r) {
    bool ok = true;
    auto m = Parse(b, &ok);
    CHECK_FALSE(ok);
    CHECK(int(m.drop) == int(r));
  };
  // hop-by-hop after another extension header
  expect_drop(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 60, Cat(Ext(0), Ext(17)))),
              DropReason::kInvalidIpv6ExtensionHeader);
  // an extension header that runs past the payload
  Bytes long_ext = Ext(17, 5);  // claims 48 bytes
  long_ext.resize(16);           // has 16
  expect_drop(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 60, long_ext)),
              DropReason::kInvalidIpv6ExtensionHeader);
  // nine extension headers
  Bytes many;
  for (int i = 0; i < 9; ++i) many = Cat(many, Ext(60));
  expect_drop(Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 60, many)),
              DropReason::kInvalidIpv6ExtensionHeader);
  // payload length beyond the frame
  Bytes b = Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 6, Tcp(1, 2)));
  b[18] = 0x7f;
  expect_drop(b, DropReason::kInvalidPacket);
  b = Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 6, Tcp(1, 2)));
  b[14] = 0x40;  // version 4 in an IPv6 ethertype
  expect_drop(b, DropReason::kInvalidPacket);
}

TEST_CASE("every truncation of every frame is rejected or parsed within bounds",
          "[packet][fuzz]") {
  std::vector<Bytes> frames = {
      Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 80, 0x02, 8), {1, 1, 1, 1})),
      Eth(0x0800, Ipv4(kA, kB, 17, Udp(1, 53, 10)), {7}),
      Eth(0x0800, Ipv4(kA, kB, 1, Icmp(8))),
      Eth(0x0806, Arp(1, kA, kB)),
      Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 0, Cat(Cat(Ext(44), FragHdr(6, 0, true)), Tcp(1, 2)))),
      Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 58, Icmp(135))),
  };
  for (const auto& f : frames) {
    bool whole = false;
    Parse(f, &whole);
    CHECK(whole);
    for (size_t n = 0; n < f.size(); ++n) {
      Bytes cut(f.begin(), f.begin() + n);  // exact-size heap copy: ASan sees overreads
      bool ok = true;
      auto m = Parse(cut, &ok);
      if (ok) {
        CHECK(m.l3_off <= n);
        CHECK(m.l4_off <= n);
      } else {
        CHECK(m.drop != DropReason::kNone);
      }
    }
    // Random corruption never crashes or reads out of bounds.
    uint32_t seed = 7;
    for (int round = 0; round < 2000; ++round) {
      Bytes c = f;
      for (int k = 0; k < 3; ++k) {
        seed = seed * 1103515245 + 12345;
        c[(seed >> 8) % c.size()] = uint8_t(seed >> 16);
      }
      bool ok = false;
      auto m = Parse(c, &ok);
      CHECK((ok || m.drop != DropReason::kNone));
    }
  }
}

TEST_CASE("the one-pass parse of plain IPv4 TCP/UDP agrees with the general parse",
          "[packet][fuzz][differential]") {
  // Untagged IPv4 without options or fragments carrying TCP or UDP is
  // checked over fixed offsets; an 802.1Q tag changes nothing else but
  // sends the same frame through the general parse. Every damaged byte,
  // header field (checksum kept right) and truncation must parse the same
  // both ways: the same drop reason, or the same metadata 4 bytes on.
  auto refresh = [](Bytes& f, size_t ip) {
    f[ip + 10] = f[ip + 11] = 0;
    uint32_t sum = 0;
    for (size_t i = 0; i < 20; i += 2) sum += uint32_t(f[ip + i] << 8 | f[ip + i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    f[ip + 10] = uint8_t(~sum >> 8);
    f[ip + 11] = uint8_t(~sum);
  };
  auto same = [](const Bytes& plain, const Bytes& tagged) {
    bool ok1 = false, ok2 = false;
    const PacketMeta a = Parse(plain, &ok1), b = Parse(tagged, &ok2);
    REQUIRE(ok1 == ok2);
    if (!ok1) {
      CHECK(a.drop == b.drop);
      return;
    }
    CHECK(a.l3_off + 4 == b.l3_off);
    CHECK(a.l4_off + 4 == b.l4_off);
    CHECK(a.flags == (b.flags & ~kPktVlan));
    CHECK(std::make_tuple(a.sport, a.dport, a.family, a.proto, a.tcp_flags) ==
          std::make_tuple(b.sport, b.dport, b.family, b.proto, b.tcp_flags));
  };
  auto tag = [](Bytes f) {
    const uint8_t t[4] = {0x81, 0x00, 0x00, 0x07};
    f.insert(f.begin() + 12, t, t + 4);
    return f;
  };
  int parsed = 0, dropped = 0;
  for (const Bytes& f : {Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1234, 80, 0x12))),
                         Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1234, 80, 0x02, 6)), {}),
                         Eth(0x0800, Ipv4(kA, kB, 17, Udp(5353, 53, 10)))}) {
    same(f, tag(f));
    for (size_t p = 0; p < f.size(); ++p) {
      for (uint8_t x : {0x01, 0x04, 0x10, 0x40, 0x80, 0xff}) {
        INFO("byte " << p << " ^ " << int(x));
        Bytes g = f;
        g[p] ^= x;
        same(g, tag(g));
        if (p >= 14 && p < 34 && p != 24 && p != 25) {  // the same, checksum right
          refresh(g, 14);
          same(g, tag(g));
          bool ok = false;
          Parse(g, &ok);
          ++(ok ? parsed : dropped);
        }
      }
    }
    const int total = int(f.size()) - 14;
    for (int t : {0, 8, 19, 20, 27, 28, 39, 40, 41, total - 1, total, total + 1}) {
      INFO("IPv4 total length " << t);
      Bytes g = f;
      g[16] = uint8_t(t >> 8);
      g[17] = uint8_t(t);
      refresh(g, 14);
      same(g, tag(g));
    }
    for (size_t n = 12; n < f.size(); ++n) {  // the tag goes after the MACs
      INFO("cut to " << n);
      same(Bytes(f.begin(), f.begin() + n), tag(Bytes(f.begin(), f.begin() + n)));
    }
  }
  CHECK(parsed > 0);
  CHECK(dropped > 0);
}

TEST_CASE("the IPv4 header sum is RFC 1071's over 16-bit words", "[packet][checksum]") {
  uint32_t seed = 1;
  for (int round = 0; round < 20000; ++round) {
    uint8_t h[60];
    const uint32_t len = round < 2 ? 20 : 20 + 4 * uint32_t(round % 11);  // 20: 1 round in 11
    for (uint32_t i = 0; i < len; ++i) {
      seed = seed * 1103515245 + 12345;
      h[i] = round == 0 ? 0xff : round == 1 ? 0 : uint8_t(seed >> 16);
      if (round > 2 && round % 5 == 0) h[i] |= 0xf0;  // sums near the carries
    }
    uint32_t want = 0;
    for (uint32_t i = 0; i < len; i += 2) want += uint32_t(h[i] | h[i + 1] << 8);
    while (want >> 16) want = (want & 0xffff) + (want >> 16);
    INFO("round " << round);
    CHECK(Ipv4HeaderSum(h, len) == want);
    if (len == 20) {
      CHECK(Ipv4Header20Valid(h) == (want == 0xffff));
      // The same header with its checksum (bytes 10-11) made right, and
      // then off by one in either direction.
      uint32_t rest = 0;
      for (uint32_t i = 0; i < 20; i += 2) rest += i == 10 ? 0 : uint32_t(h[i] | h[i + 1] << 8);
      while (rest >> 16) rest = (rest & 0xffff) + (rest >> 16);
      const uint16_t ck = uint16_t(~rest);
      h[10] = uint8_t(ck);
      h[11] = uint8_t(ck >> 8);
      CHECK(Ipv4HeaderSum(h, 20) == 0xffff);
      CHECK(Ipv4Header20Valid(h));
      for (int delta : {1, -1}) {
        uint8_t g[20];
        std::memcpy(g, h, 20);
        g[11] = uint8_t(g[11] + delta);
        CHECK(Ipv4Header20Valid(g) == (Ipv4HeaderSum(g, 20) == 0xffff));
      }
      // Ipv4Header20ValidV4 (its caller checked byte 0 == 0x45) answers
      // the same for such headers: right, and off by one either way.
      uint8_t v[20];
      std::memcpy(v, h, 20);
      v[0] = 0x45;
      v[10] = v[11] = 0;
      const uint16_t vck = uint16_t(~Ipv4HeaderSum(v, 20));
      v[10] = uint8_t(vck);
      v[11] = uint8_t(vck >> 8);
      CHECK(Ipv4Header20ValidV4(v));
      for (int delta : {1, -1, 0x100}) {
        uint8_t g[20];
        std::memcpy(g, v, 20);
        const uint16_t w = uint16_t((g[10] | g[11] << 8) + delta);
        g[10] = uint8_t(w);
        g[11] = uint8_t(w >> 8);
        CHECK(Ipv4Header20ValidV4(g) == Ipv4Header20Valid(g));
        CHECK(Ipv4Header20ValidV4(g) == (Ipv4HeaderSum(g, 20) == 0xffff));
      }
    }
  }
}

TEST_CASE("ParseBurst on mbufs: good packets kept in order, bad ones to the drop list",
          "[packet][mbuf]") {
  REQUIRE(RegisterPacketMeta().ok());
  REQUIRE(RegisterPacketMeta().ok());  // idempotent
  rte_mempool* pool = rte_pktmbuf_pool_create("pt_pool", 255, 0, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  REQUIRE(pool != nullptr);
  std::vector<Bytes> in = {
      Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 80))),
      Eth(0x88cc, Bytes(40, 0)),  // LLDP: dropped
      Eth(0x86DD, Ipv6("fd00::1", "fd00::2", 17, Udp(1, 53))),
      Bytes(10, 0),               // runt: dropped
      Eth(0x0806, Arp(1, kA, kB)),
  };
  rte_mbuf* pkts[8];
  rte_mbuf* drops[8];
  for (size_t i = 0; i < in.size(); ++i) {
    pkts[i] = ToMbuf(pool, in[i]);
    REQUIRE(pkts[i] != nullptr);
    Meta(pkts[i])->in_port = 5;  // stale: every field is written
    Meta(pkts[i])->rule_id = 77;
  }
  uint16_t nd = 0;
  uint16_t kept = ParseBurst(pkts, uint16_t(in.size()), drops, &nd, false, 3);
  CHECK(kept == 3);
  CHECK(nd == 2);
  CHECK(Meta(pkts[0])->dport == 80);
  CHECK(Meta(pkts[1])->family == 6);
  CHECK((Meta(pkts[2])->flags & kPktArp));
  for (uint16_t i = 0; i < kept; ++i) {
    CHECK(Meta(pkts[i])->in_port == 3);  // the RX port, as told
    CHECK(Meta(pkts[i])->rule_id == 0);
  }
  CHECK(Meta(drops[0])->drop == DropReason::kUnsupportedL3Protocol);
  CHECK(Meta(drops[1])->drop == DropReason::kInvalidPacket);
  CHECK(Meta(drops[1])->in_port == 3);  // drops are counted by it
  rte_pktmbuf_free_bulk(pkts, kept);
  rte_pktmbuf_free_bulk(drops, nd);
  CHECK(rte_mempool_avail_count(pool) == 255);  // nothing leaked
  rte_mempool_free(pool);
}

TEST_CASE("ParseBurst takes the NIC's IPv4 checksum verdict only when asked to",
          "[packet][mbuf][offload]") {
  REQUIRE(RegisterPacketMeta().ok());
  rte_mempool* pool = rte_pktmbuf_pool_create("pt_pool_ck", 63, 0, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  REQUIRE(pool != nullptr);
  Bytes good = Eth(0x0800, Ipv4(kA, kB, 6, Tcp(1, 80)));
  Bytes bad = good;
  bad[24] ^= 0xff;  // the header checksum
  struct Case {
    const Bytes* frame;
    uint64_t flags;
    bool use_nic, kept;
  } cases[] = {
      {&bad, RTE_MBUF_F_RX_IP_CKSUM_GOOD, true, true},      // the NIC checked it
      {&good, RTE_MBUF_F_RX_IP_CKSUM_BAD, true, false},     // the NIC says bad: 134
      {&bad, RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN, true, false},  // not checked: software
      {&bad, RTE_MBUF_F_RX_IP_CKSUM_NONE, true, false},
      {&good, RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN, true, true},
      {&bad, RTE_MBUF_F_RX_IP_CKSUM_GOOD, false, false},    // not asked: software
      {&good, RTE_MBUF_F_RX_IP_CKSUM_BAD, false, true},
  };
  for (const Case& c : cases) {
    INFO("flags " << c.flags << " use " << c.use_nic << " good " << (c.frame == &good));
    rte_mbuf* m = ToMbuf(pool, *c.frame);
    REQUIRE(m != nullptr);
    m->ol_flags |= c.flags;
    rte_mbuf* drops[1];
    uint16_t nd = 0;
    uint16_t kept = ParseBurst(&m, 1, drops, &nd, c.use_nic, 2);
    CHECK(kept == (c.kept ? 1 : 0));
    if (!c.kept) {
      REQUIRE(nd == 1);
      CHECK(Meta(m)->drop == DropReason::kInvalidPacket);
      CHECK(Meta(m)->in_port == 2);
    }
    rte_pktmbuf_free(m);
  }
  CHECK(rte_mempool_avail_count(pool) == 63);
  rte_mempool_free(pool);
}

TEST_CASE("drop reasons: Cilium's numbers and names, one table",
          "[drop][cilium:api/v1/flow/flow.proto DropReason; pkg/monitor/api/drop.go]") {
  CHECK(int(DropReason::kPolicyDenied) == 133);
  CHECK(int(DropReason::kPolicyDeny) == 181);
  CHECK(int(DropReason::kInvalidSourceIp) == 132);
  CHECK(int(DropReason::kServiceBackendNotFound) == 158);
  CHECK(int(DropReason::kInvalidIdentity) == 171);
  CHECK(DropReasonEnumName(DropReason::kPolicyDenied) == "POLICY_DENIED");
  CHECK(DropReasonText(DropReason::kPolicyDeny) == "Policy denied by denylist");
  CHECK(DropReasonText(DropReason::kFragmentationNotSupported) == "IP fragmentation not supported");
  for (auto r : AllDropReasons()) {
    INFO(int(r));
    CHECK_FALSE(DropReasonEnumName(r).empty());
    CHECK_FALSE(DropReasonText(r).empty());
  }
  CHECK(DropReasonText(DropReason(7)).empty());
}
