// Two instances (cluster1, cluster2) in one process joined by the fabric:
// VXLAN and Geneve with the source identity in the VNI, as Cilium's tunnel
// mode (bpf/lib/encap.h, bpf/bpf_overlay.c); ingress policy at the
// destination's instance; replies through conntrack at both.
#include <catch2/catch.hpp>

#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/conntrack.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {

constexpr uint16_t kFabricPort = 3;

struct Instance {
  World w;
  std::map<std::string, std::string> ip = {
      {"cluster1/frontend", "10.1.0.10"}, {"cluster1/test", "10.1.0.11"},
      {"cluster1/myapp", "10.1.0.20"},    {"cluster2/frontend", "10.2.0.10"},
      {"cluster2/test", "10.2.0.11"},     {"cluster2/myapp", "10.2.0.20"}};
  std::map<std::string, uint16_t> port;  // local endpoint -> port
  uint32_t node, peer;
  Encap encap;
  std::unique_ptr<RcuCell<Snapshot>> cell;
  std::unique_ptr<IpcacheTable> table;
  std::unique_ptr<Conntrack> ct;
  std::unique_ptr<Pipeline> pl;
  std::unique_ptr<Snapshot> snap;
  TxStage out;

  Instance(const std::string& cluster, uint32_t id, uint32_t node_ip, uint32_t peer_ip, Encap e)
      : node(node_ip), peer(peer_ip), encap(e) {
    Pool();  // registers the packet metadata before the Pipeline below
    w.cluster = cluster;
    w.cluster_id = id;
    for (const char* c : {"cluster1", "cluster2"}) {  // same order everywhere
      w.Add("frontend", {{"app", "frontend"}}, "default", c);
      w.Add("test", {{"app", "test"}}, "default", c);
      w.Add("myapp", {{"app", "myapp"}}, "default", c);
    }
    for (const auto& [name, addr] : ip) {
      if (name.starts_with(cluster + "/")) continue;
      identity::IpCacheEntry e;
      e.id = w.Get(name).id;
      e.tunnel_endpoint = identity::IpAddr::V4(peer);
      w.ipcache.Upsert(identity::Prefix::Host(*identity::IpAddr::Parse(addr)), e);
    }
    cell = std::move(*RcuCell<Snapshot>::Create(1));
    table = std::move(*IpcacheTable::Create({1 << 12, 256}, cell->qsbr()));
    ct = std::move(*Conntrack::Create(1024, cell->qsbr()));
    pl = std::make_unique<Pipeline>(*cell, 0, ct.get());
    Rebuild();
  }
  std::vector<ServiceSpec> services;
  void Rebuild() {
    SnapshotInput in;
    in.services = services;
    in.policy = &w.Compiled();
    in.ipcache = table.get();
    in.router_mac = kRouter;
    in.fabric.port = kFabricPort;
    in.fabric.encap = encap;
    in.fabric.node_v4 = node;
    in.fabric.node_mac = Mac(0xf0);
    uint16_t p = 0;
    for (const auto* e : w.LocalInCompileOrder()) {
      SnapshotEndpoint se;
      se.port = p;
      se.mac = Mac(uint8_t(p + 1));
      se.identity = e->id;
      se.addrs.push_back(*identity::IpAddr::Parse(ip.at(w.cluster + "/" + e->spec.name)));
      port[e->spec.name] = p++;
      in.endpoints.push_back(se);
    }
    REQUIRE(SyncIpcache(*table, w.ipcache, in.endpoints).ok());
    table->Reclaim();
    auto s = BuildSnapshot(in);
    REQUIRE(s.ok());
    snap = std::move(*s);
  }
  void Receive(rte_mbuf* m, uint16_t in_port) { pl->Process(*snap, &m, 1, in_port, out); }
  void Send(const std::string& from, const Bytes& f) {
    rte_mbuf* m = ToMbuf(Pool(), f);
    REQUIRE(m != nullptr);
    Receive(m, port.at(from));
  }
  // What became of one frame received on the fabric (TakeFate); `tagged`:
  // the tag at byte 12 of what leaves is left out of the bytes compared.
  Fate FabricFate(const Bytes& frame, bool tagged) {
    const DropCounters before = pl->counters().drops[kFabricPort];
    rte_mbuf* m = ToMbuf(Pool(), frame);
    REQUIRE(m != nullptr);
    Receive(m, kFabricPort);
    return TakeFate(out, before, pl->counters().drops[kFabricPort], tagged);
  }
  std::vector<rte_mbuf*> Take(uint16_t p) {
    std::vector<rte_mbuf*> v(out.pkts[p].begin(), out.pkts[p].begin() + out.n[p]);
    out.n[p] = 0;
    return v;
  }
};

Bytes Tcp4(const char* src, const char* dst, uint16_t sport, uint16_t dport, uint8_t flags = 0x02) {
  return Eth(0x0800, Ipv4(V4(src), V4(dst), 6, Tcp(sport, dport, flags)));
}

// What `from` on instance `a` sending `frame` puts on the fabric: one frame.
Bytes OnTheWire(Instance& a, const std::string& from, const Bytes& frame) {
  a.Send(from, frame);
  auto wire = a.Take(kFabricPort);
  REQUIRE(wire.size() == 1);
  const uint8_t* w = rte_pktmbuf_mtod(wire[0], const uint8_t*);
  Bytes out(w, w + rte_pktmbuf_data_len(wire[0]));
  rte_pktmbuf_free(wire[0]);
  return out;
}

}  // namespace

TEST_CASE("VXLAN and Geneve round trips between two instances", "[fabric]") {
  for (Encap e : {Encap::kVxlan, Encap::kGeneve}) {
    bool vxlan = e == Encap::kVxlan;
    INFO((vxlan ? "vxlan" : "geneve"));
    Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), e);
    Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), e);
    b.w.Apply(kMyappFromFrontend);
    b.Rebuild();
    a.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lockdown}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{}]
)");
    a.Rebuild();
    REQUIRE(a.w.Get("cluster1/frontend").id == b.w.Get("cluster1/frontend").id);

    // cluster1/frontend -> cluster2/myapp: encapsulated at A ...
    a.Send("frontend", Tcp4("10.1.0.10", "10.2.0.20", 40000, 80));
    auto wire = a.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    auto* ip = rte_pktmbuf_mtod_offset(wire[0], rte_ipv4_hdr*, 14);
    CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("192.168.0.2"));
    CHECK(rte_be_to_cpu_32(ip->src_addr) == V4("192.168.0.1"));
    CHECK(rte_raw_cksum(ip, 20) == 0xffff);
    auto* udp = rte_pktmbuf_mtod_offset(wire[0], rte_udp_hdr*, 34);
    CHECK(rte_be_to_cpu_16(udp->dst_port) == (vxlan ? 8472 : 6081));
    const uint8_t* t = rte_pktmbuf_mtod_offset(wire[0], const uint8_t*, 42);
    uint32_t vni = uint32_t(t[4]) << 16 | uint32_t(t[5]) << 8 | t[6];
    CHECK(vni == a.w.Get("cluster1/frontend").id);  // the source identity on the wire
    CHECK(rte_pktmbuf_pkt_len(wire[0]) == 50 + 54);
    // ... decapsulated at B, checked by B's ingress policy, delivered.
    b.Receive(wire[0], kFabricPort);
    auto got = b.Take(b.port["myapp"]);
    REQUIRE(got.size() == 1);
    CHECK(Meta(got[0])->src_identity == a.w.Get("cluster1/frontend").id);
    CHECK(rte_pktmbuf_pkt_len(got[0]) == 54);
    rte_pktmbuf_free(got[0]);

    // The reply goes back through the fabric; A's frontend takes no
    // ingress, but conntrack at A knows the connection.
    b.Send("myapp", Tcp4("10.2.0.20", "10.1.0.10", 80, 40000, 0x12));
    wire = b.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    a.Receive(wire[0], kFabricPort);
    got = a.Take(a.port["frontend"]);
    REQUIRE(got.size() == 1);
    CHECK((Meta(got[0])->flags & kPktReply));
    rte_pktmbuf_free(got[0]);

    // cluster1/test is not a frontend: dropped by B (133), not by A.
    a.Send("test", Tcp4("10.1.0.11", "10.2.0.20", 40001, 80));
    wire = a.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    b.Receive(wire[0], kFabricPort);
    CHECK(b.Take(b.port["myapp"]).empty());
    CHECK(b.pl->counters().drops[kFabricPort].by_reason[133] == 1);
  }
}

TEST_CASE("the fabric refuses identity 1, foreign addresses, other ports, malformed headers",
          "[fabric][drops][cilium:bpf/bpf_overlay.c DROP_INVALID_IDENTITY]") {
  Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), Encap::kVxlan);
  Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), Encap::kVxlan);
  auto encapsulated = [&]() {
    a.Send("frontend", Tcp4("10.1.0.10", "10.2.0.20", 40000, 80));
    auto wire = a.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    return wire[0];
  };
  rte_mbuf* m = encapsulated();
  uint8_t* t = rte_pktmbuf_mtod_offset(m, uint8_t*, 42);
  t[4] = 0;
  t[5] = 0;
  t[6] = 1;  // VNI = host
  b.Receive(m, kFabricPort);
  CHECK(b.pl->dropped(DropReason::kInvalidIdentity) == 1);

  m = encapsulated();
  rte_pktmbuf_mtod_offset(m, uint8_t*, 42)[0] = 0;  // VXLAN I flag cleared
  b.Receive(m, kFabricPort);
  CHECK(b.pl->dropped(DropReason::kInvalidVni) == 1);

  m = encapsulated();  // addressed to another node
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
  ip->dst_addr = rte_cpu_to_be_32(V4("192.168.0.9"));
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  b.Receive(m, kFabricPort);
  CHECK(b.pl->dropped(DropReason::kUnknownL3TargetAddress) == 1);

  m = encapsulated();  // truncated inner frame
  rte_pktmbuf_trim(m, 40);
  auto* ip2 = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
  ip2->total_length = rte_cpu_to_be_16(uint16_t(rte_pktmbuf_pkt_len(m) - 14));
  ip2->hdr_checksum = 0;
  ip2->hdr_checksum = rte_ipv4_cksum(ip2);
  auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, 34);
  udp->dgram_len = rte_cpu_to_be_16(uint16_t(rte_pktmbuf_pkt_len(m) - 34));
  b.Receive(m, kFabricPort);
  CHECK(b.pl->counters().forwarded == 0);
  CHECK(b.pl->dropped(DropReason::kInvalidPacket) == 1);  // the inner frame is a runt

  // A packet for an address that is not B's local endpoint: no transit.
  a.w.ipcache.Upsert(*identity::Prefix::Parse("10.2.0.99/32"),
                     {b.w.Get("cluster2/test").id, identity::IpAddr::V4(V4("192.168.0.2"))});
  a.Rebuild();
  a.Send("frontend", Tcp4("10.1.0.10", "10.2.0.99", 40000, 80));
  auto wire = a.Take(kFabricPort);
  REQUIRE(wire.size() == 1);
  b.Receive(wire[0], kFabricPort);
  CHECK(b.pl->dropped(DropReason::kNoMatchingLocalContainer) == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("frames of the usual shape decapsulate in one pass with the general path's verdicts",
          "[fabric][drops][differential]") {
  // The fabric port checks frames of the usual shape (untagged Ethernet,
  // IPv4 without options or fragments, UDP to the tunnel port) in one pass
  // and sends every other shape through the general parse. An 802.1Q tag
  // on the outer Ethernet header changes nothing else but takes the general
  // path: each frame, damaged byte by byte or cut short, must meet the same
  // fate both ways (delivered the same, or dropped for the same reason).
  for (Encap e : {Encap::kVxlan, Encap::kGeneve}) {
    INFO((e == Encap::kVxlan ? "vxlan" : "geneve"));
    Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), e);
    Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), e);
    const Bytes plain = OnTheWire(a, "frontend", Tcp4("10.1.0.10", "10.2.0.20", 40000, 80));
    const Bytes tagged = WithVlanTag(plain);
    auto fate = [&](const Bytes& frame) { return b.FabricFate(frame, false); };
    const Fate intact = fate(plain);
    REQUIRE(intact.reason == -1);  // delivered
    REQUIRE(intact.port == b.port.at("myapp"));
    CHECK(fate(tagged) == intact);
    const size_t outer = 14 + 20 + 8 + 8;
    int delivered = 0, dropped = 0;
    for (size_t p = 0; p < outer; ++p) {
      for (uint8_t x : {0x01, 0x08, 0x40, 0x80, 0xff}) {
        INFO("byte " << p << " ^ " << int(x));
        Bytes f1 = plain, f2 = tagged;
        f1[p] ^= x;
        f2[p < 12 ? p : p + 4] ^= x;
        const Fate one = fate(f1), general = fate(f2);
        if (p == 12 || p == 13) {  // the EtherType: not the same frame either way
          CHECK((one.reason == -1) == (general.reason == -1));
        } else {
          CHECK(one == general);
        }
        ++(one.reason == -1 ? delivered : dropped);
      }
    }
    // The outer IPv4 header changed with its checksum kept right: lengths,
    // fragments, protocol, addresses.
    const auto refresh = RefreshIpv4Checksum;
    for (size_t p = 14; p < 34; ++p) {
      if (p == 24 || p == 25) continue;  // the checksum itself
      for (uint8_t x : {0x01, 0x02, 0x20, 0x40, 0x80, 0xff}) {
        INFO("IPv4 byte " << p << " ^ " << int(x) << ", checksum refreshed");
        Bytes f1 = plain, f2 = tagged;
        f1[p] ^= x;
        f2[p + 4] ^= x;
        refresh(f1, 14);
        refresh(f2, 18);
        const Fate one = fate(f1);
        CHECK(one == fate(f2));
        ++(one.reason == -1 ? delivered : dropped);
      }
    }
    const int total = int(plain.size()) - 14;
    for (int t : {0, 8, 19, 20, 27, 28, 49, 50, total - 1, total, total + 1}) {
      INFO("IPv4 total length " << t);
      Bytes f1 = plain, f2 = tagged;
      f1[16] = f2[20] = uint8_t(t >> 8);
      f1[17] = f2[21] = uint8_t(t);
      refresh(f1, 14);
      refresh(f2, 18);
      CHECK(fate(f1) == fate(f2));
    }
    for (size_t len = 14; len < plain.size(); ++len) {  // cut short
      INFO("length " << len);
      const Fate one = fate(Bytes(plain.begin(), plain.begin() + len));
      CHECK(one.reason != -1);
      CHECK(one == fate(Bytes(tagged.begin(), tagged.begin() + len + 4)));
    }
    CHECK(delivered > 0);  // MACs, the UDP source port and checksum, reserved bits
    CHECK(dropped > 0);
    CHECK(rte_mempool_avail_count(Pool()) == 1023);
  }
}

TEST_CASE("the inner frame meets the same fate in the one-pass fabric parse and the general one",
          "[fabric][drops][differential]") {
  // PlainFabric checks the outer headers and the inner frame (untagged
  // Ethernet, IPv4 without options or fragments, TCP or UDP) in one pass;
  // an 802.1Q tag on the outer header sends the frame through the general
  // decapsulation and the inner plain parse (ParsePlain), a tag on the
  // inner header too through the general inner parse. Each inner byte
  // damaged, each inner IPv4 field changed with its checksum kept right,
  // must meet the same fate all three ways: the same drop reason, or the
  // same bytes delivered on the same port (the inner tag aside).
  for (Encap e : {Encap::kVxlan, Encap::kGeneve}) {
    INFO((e == Encap::kVxlan ? "vxlan" : "geneve"));
    Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), e);
    Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), e);
    for (bool tcp : {true, false}) {
      INFO((tcp ? "tcp" : "udp"));
      const Bytes plain = OnTheWire(
          a, "frontend",
          tcp ? Tcp4("10.1.0.10", "10.2.0.20", 40000, 80)
              : Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.2.0.20"), 17, Udp(40001, 53, 12))));
      constexpr size_t kIn = 14 + 20 + 8 + 8;  // the inner frame in `plain`
      const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x07};
      const Bytes outer_tagged = WithVlanTag(plain);
      Bytes both_tagged = outer_tagged;
      both_tagged.insert(both_tagged.begin() + 4 + kIn + 12, tag, tag + 4);
      const auto refresh = RefreshIpv4Checksum;
      // The outer lengths (IPv4 total, UDP) of the doubly tagged frame grow
      // by the inner tag.
      for (size_t at : {size_t(18 + 2), size_t(18 + 20 + 4)}) {
        const uint16_t v = uint16_t((both_tagged[at] << 8 | both_tagged[at + 1]) + 4);
        both_tagged[at] = uint8_t(v >> 8);
        both_tagged[at + 1] = uint8_t(v);
      }
      refresh(both_tagged, 18);
      auto fate = [&](const Bytes& frame, bool inner_tag) { return b.FabricFate(frame, inner_tag); };
      const Fate intact = fate(plain, false);  // a new connection
      REQUIRE(intact.reason == -1);
      REQUIRE(intact.port == b.port.at("myapp"));
      CHECK(fate(plain, false) == intact);  // established: the cached verdict
      CHECK(fate(outer_tagged, false) == intact);
      CHECK(fate(both_tagged, true) == intact);
      // Where inner byte `q` lies in each frame.
      auto at = [&](size_t q) {
        return std::array<size_t, 3>{kIn + q, 4 + kIn + q, 4 + kIn + (q < 12 ? q : q + 4)};
      };
      const size_t l4_bytes = tcp ? 20 : 8;
      int delivered = 0, dropped = 0;
      for (size_t q = 0; q < 14 + 20 + l4_bytes; ++q) {
        for (uint8_t x : {0x01, 0x08, 0x40, 0x80, 0xff}) {
          INFO("inner byte " << q << " ^ " << int(x));
          Bytes f1 = plain, f2 = outer_tagged, f3 = both_tagged;
          const auto pos = at(q);
          f1[pos[0]] ^= x;
          f2[pos[1]] ^= x;
          f3[pos[2]] ^= x;
          const Fate one = fate(f1, false), outer_general = fate(f2, false);
          const Fate general = fate(f3, true);
          CHECK(one == outer_general);
          if (q == 12 || q == 13) {  // the inner EtherType: not the same frame with a tag
            CHECK((one.reason == -1) == (general.reason == -1));
          } else {
            CHECK(one == general);
          }
          ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
        }
      }
      // Inner IPv4 fields with the checksum kept right: lengths, fragment
      // fields, protocol, TTL, addresses.
      for (size_t q = 14; q < 34; ++q) {
        if (q == 24 || q == 25) continue;  // the checksum itself
        for (uint8_t x : {0x01, 0x02, 0x20, 0x40, 0x80, 0xff}) {
          INFO("inner IPv4 byte " << q << " ^ " << int(x) << ", checksum refreshed");
          Bytes f1 = plain, f2 = outer_tagged, f3 = both_tagged;
          const auto pos = at(q);
          f1[pos[0]] ^= x;
          f2[pos[1]] ^= x;
          f3[pos[2]] ^= x;
          refresh(f1, kIn + 14);
          refresh(f2, 4 + kIn + 14);
          refresh(f3, 4 + kIn + 18);
          const Fate one = fate(f1, false);
          CHECK(one == fate(f2, false));
          CHECK(one == fate(f3, true));
          ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
        }
      }
      const int itotal = int(plain.size() - kIn) - 14;
      for (int t : {0, 19, 20, 27, 28, 39, 40, 41, itotal - 1, itotal, itotal + 1}) {
        INFO("inner IPv4 total length " << t);
        Bytes f1 = plain, f2 = outer_tagged, f3 = both_tagged;
        const auto pos = at(16);
        for (int k = 0; k < 3; ++k) {
          Bytes& f = k == 0 ? f1 : k == 1 ? f2 : f3;
          f[pos[k]] = uint8_t(t >> 8);
          f[pos[k] + 1] = uint8_t(t);
        }
        refresh(f1, kIn + 14);
        refresh(f2, 4 + kIn + 14);
        refresh(f3, 4 + kIn + 18);
        const Fate one = fate(f1, false);
        CHECK(one == fate(f2, false));
        CHECK(one == fate(f3, true));
      }
      CHECK(delivered > 0);  // MACs, ports, the TCP flags and window
      CHECK(dropped > 0);
    }
    CHECK(rte_mempool_avail_count(Pool()) == 1023);
  }
}

TEST_CASE("an established tuple arriving with another identity in its VNI is classified again",
          "[fabric][verdict-cache][cilium:bpf/bpf_overlay.c identity from the tunnel key]") {
  // B allows only frontends into myapp. A's frontend opens a connection;
  // later packets of the same tuple claim test's identity: the verdict
  // cached for frontend must not carry them (conntrack.h, CtVerdict).
  Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), Encap::kVxlan);
  Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), Encap::kVxlan);
  b.w.Apply(kMyappFromFrontend);
  b.Rebuild();
  auto over = [&](uint8_t flags) {
    a.Send("frontend", Tcp4("10.1.0.10", "10.2.0.20", 40000, 80, flags));
    auto wire = a.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    return wire[0];
  };
  auto delivered = [&] {
    auto got = b.Take(b.port.at("myapp"));
    for (auto* m : got) rte_pktmbuf_free(m);
    return got.size();
  };
  b.Receive(over(0x02), kFabricPort);
  CHECK(delivered() == 1);
  b.Receive(over(0x10), kFabricPort);
  CHECK(delivered() == 1);
  uint64_t cached = b.pl->counters().verdicts_cached;
  rte_mbuf* m = over(0x10);
  uint32_t test_id = b.w.Get("cluster1/test").id;
  uint8_t* t = rte_pktmbuf_mtod_offset(m, uint8_t*, 42);
  t[4] = uint8_t(test_id >> 16);
  t[5] = uint8_t(test_id >> 8);
  t[6] = uint8_t(test_id);
  b.Receive(m, kFabricPort);
  CHECK(delivered() == 0);
  CHECK(b.pl->dropped(DropReason::kPolicyDenied) == 1);
  CHECK(b.pl->counters().verdicts_cached == cached);  // not taken from the cache
  b.Receive(over(0x10), kFabricPort);  // the genuine sender still passes
  CHECK(delivered() == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("seed: a global service served by the other cluster, under that cluster's policy",
          "[fabric][service][seed]") {
  Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), Encap::kVxlan);
  Instance b("cluster2", 2, V4("192.168.0.2"), V4("192.168.0.1"), Encap::kVxlan);
  // cluster1's myapp is scaled to zero: the service's only backend is remote.
  ServiceSpec svc;
  svc.vip = *identity::IpAddr::Parse("10.96.0.80");
  svc.port = 80;
  svc.backends = {{*identity::IpAddr::Parse("10.2.0.20"), 80}};
  a.services = {svc};
  a.Rebuild();
  b.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend, io.cilium.k8s.policy.cluster: cluster1}}]
)");
  b.Rebuild();
  // cluster1/frontend -> myapp-service: DNAT at A, encapsulated, allowed at B.
  a.Send("frontend", Tcp4("10.1.0.10", "10.96.0.80", 40000, 80));
  auto wire = a.Take(kFabricPort);
  REQUIRE(wire.size() == 1);
  b.Receive(wire[0], kFabricPort);
  auto got = b.Take(b.port["myapp"]);
  REQUIRE(got.size() == 1);
  auto* ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
  CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("10.2.0.20"));
  rte_pktmbuf_free(got[0]);
  // The answer returns through the fabric and comes from the service.
  b.Send("myapp", Tcp4("10.2.0.20", "10.1.0.10", 80, 40000, 0x12));
  wire = b.Take(kFabricPort);
  REQUIRE(wire.size() == 1);
  a.Receive(wire[0], kFabricPort);
  got = a.Take(a.port["frontend"]);
  REQUIRE(got.size() == 1);
  ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
  CHECK(rte_be_to_cpu_32(ip->src_addr) == V4("10.96.0.80"));
  rte_pktmbuf_free(got[0]);
  // cluster1/test -> myapp-service: DNAT and out at A, denied by B (133).
  a.Send("test", Tcp4("10.1.0.11", "10.96.0.80", 40001, 80));
  wire = a.Take(kFabricPort);
  REQUIRE(wire.size() == 1);
  b.Receive(wire[0], kFabricPort);
  CHECK(b.Take(b.port["myapp"]).empty());
  CHECK(b.pl->counters().drops[kFabricPort].by_reason[133] == 1);
}

TEST_CASE("a fabric port that fills in IPv4 checksums gets the outer header's left to it",
          "[fabric][offload]") {
  // RTE_ETH_TX_OFFLOAD_IPV4_CKSUM (DPDK's mbuf API: the checksum field 0,
  // RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM, l2_len and l3_len set).
  Instance a("cluster1", 1, V4("192.168.0.1"), V4("192.168.0.2"), Encap::kVxlan);
  a.w.Apply(kMyappFromFrontend);
  a.Rebuild();
  for (bool offload : {true, false}) {
    INFO("offload " << offload);
    a.pl->SetPortOffloads(kFabricPort, offload ? kTxIpv4Cksum : 0);
    a.Send("frontend", Tcp4("10.1.0.10", "10.2.0.20", uint16_t(40000 + offload), 80));
    auto wire = a.Take(kFabricPort);
    REQUIRE(wire.size() == 1);
    auto* ip = rte_pktmbuf_mtod_offset(wire[0], rte_ipv4_hdr*, 14);
    const uint64_t want = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    if (offload) {
      CHECK((wire[0]->ol_flags & want) == want);
      CHECK(wire[0]->l2_len == 14);
      CHECK(wire[0]->l3_len == 20);
      CHECK(ip->hdr_checksum == 0);
      ip->hdr_checksum = rte_ipv4_cksum(ip);  // what the NIC does
    } else {
      CHECK((wire[0]->ol_flags & want) == 0);
    }
    CHECK(rte_raw_cksum(ip, 20) == 0xffff);
    rte_pktmbuf_free(wire[0]);
  }
}
