// Services in the pipeline: DNAT at the source endpoint before policy,
// reverse NAT on replies, the backend pinned by conntrack, 158 without
// backends.
#include <catch2/catch.hpp>

#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <set>

#include "dataplane/conntrack.h"
#include "lb/maglev.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {

ServiceSpec Svc(std::vector<const char*> backends) {
  ServiceSpec s;
  s.vip = *identity::IpAddr::Parse("10.96.0.80");
  s.port = 80;
  s.proto = 6;
  std::vector<std::string> keys;
  for (const char* b : backends) {
    s.backends.push_back({*identity::IpAddr::Parse(b), 8080});
    keys.push_back(lb::MaglevBackendKey(*identity::IpAddr::Parse(b), 8080, "TCP"));
  }
  s.maglev = lb::MaglevTable(keys, 251, lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed)->murmur);
  return s;
}

// A TCP checksum that verifies: recompute over the packet as it is.
bool TcpChecksumValid(rte_mbuf* m) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, 34);
  uint16_t have = tcp->cksum;
  tcp->cksum = 0;
  uint16_t want = rte_ipv4_udptcp_cksum(ip, tcp);
  tcp->cksum = have;
  return have == want && rte_raw_cksum(ip, 20) == 0xffff;
}

struct SvcNode {
  Node n;
  std::unique_ptr<RcuCell<Snapshot>> cell;
  std::unique_ptr<Conntrack> ct;
  std::unique_ptr<Pipeline> pl;
  std::unique_ptr<Snapshot> snap;
  TxStage out;
  SvcNode() {
    cell = std::move(*RcuCell<Snapshot>::Create(1));
    ct = std::move(*Conntrack::Create(1024, cell->qsbr()));
    pl = std::make_unique<Pipeline>(*cell, 0, ct.get());
  }
  void Build(std::vector<ServiceSpec> services) {
    n.services = std::move(services);
    snap = n.Build();
  }
  void Send(const std::string& from, const Bytes& f) {
    rte_mbuf* m = ToMbuf(Pool(), f);
    REQUIRE(m != nullptr);
    pl->Process(*snap, &m, 1, n.port.at(from), out);
  }
  // What became of one frame sent from `from` (TakeFate); `tagged`: its
  // 802.1Q tag is left out of the bytes compared.
  Fate FateOf(const std::string& from, const Bytes& frame, bool tagged) {
    const uint16_t p = n.port.at(from);
    const DropCounters before = pl->counters().drops[p];
    rte_mbuf* m = ToMbuf(Pool(), frame);
    REQUIRE(m != nullptr);
    pl->Process(*snap, &m, 1, p, out);
    return TakeFate(out, before, pl->counters().drops[p], tagged);
  }
  std::vector<rte_mbuf*> Take(const std::string& to) {
    uint16_t p = n.port.at(to);
    std::vector<rte_mbuf*> v(out.pkts[p].begin(), out.pkts[p].begin() + out.n[p]);
    out.n[p] = 0;
    return v;
  }
};

Bytes Syn(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags = 0x02) {
  return Eth(0x0800, Ipv4(V4(src), V4(dst), 6, Tcp(sport, dport, flags)));
}

// ServiceTable::Lookup4 asked for an IPv4 key, from the words the
// endpoint's frame gives it (ServiceMatch): the key's first four bytes and
// the address as it lies in the packet.
int32_t Lookup4Of(const ServiceTable& t, const ServiceKey& k) {
  uint32_t head, a;
  std::memcpy(&head, &k, 4);
  std::memcpy(&a, k.addr, 4);
  return t.Lookup4(head, a);
}

}  // namespace

TEST_CASE("a service: DNAT before policy (backend port), reverse NAT on replies",
          "[service][cilium:Documentation/security/policy/layer4.rst after service port mapping]") {
  SvcNode s;
  s.n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
)");
  s.Build({Svc({"10.1.0.20"})});
  s.Send("frontend", Syn("10.1.0.10", 40000, "10.96.0.80", 80));
  auto got = s.Take("myapp");
  REQUIRE(got.size() == 1);
  auto* ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
  auto* tcp = rte_pktmbuf_mtod_offset(got[0], rte_tcp_hdr*, 34);
  CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("10.1.0.20"));
  CHECK(rte_be_to_cpu_16(tcp->dst_port) == 8080);
  CHECK(TcpChecksumValid(got[0]));
  rte_pktmbuf_free(got[0]);
  // The reply leaves the backend and reaches the client from the frontend.
  s.Send("myapp", Syn("10.1.0.20", 8080, "10.1.0.10", 40000, 0x12));
  got = s.Take("frontend");
  REQUIRE(got.size() == 1);
  ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
  tcp = rte_pktmbuf_mtod_offset(got[0], rte_tcp_hdr*, 34);
  CHECK(rte_be_to_cpu_32(ip->src_addr) == V4("10.96.0.80"));
  CHECK(rte_be_to_cpu_16(tcp->src_port) == 80);
  CHECK(TcpChecksumValid(got[0]));
  rte_pktmbuf_free(got[0]);
  // test is not a frontend: denied at myapp's ingress, after DNAT (133).
  s.Send("test", Syn("10.1.0.11", 40001, "10.96.0.80", 80));
  CHECK(s.Take("myapp").empty());
  CHECK(s.pl->dropped(DropReason::kPolicyDenied) == 1);
}

TEST_CASE("the policy sees the backend port, not the service port",
          "[service][cilium:Documentation/security/policy/layer4.rst]") {
  SvcNode s;
  s.n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: port-80-only}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
)");
  s.Build({Svc({"10.1.0.20"})});
  s.Send("frontend", Syn("10.1.0.10", 40000, "10.96.0.80", 80));
  CHECK(s.Take("myapp").empty());  // 80 is the service port; the backend's is 8080
  CHECK(s.pl->dropped(DropReason::kPolicyDenied) == 1);
}

TEST_CASE("connections keep their backend when the service changes; new ones use Maglev",
          "[service][conntrack][maglev]") {
  SvcNode s;
  s.Build({Svc({"10.1.0.11", "10.1.0.20"})});  // test and myapp as backends
  std::map<uint16_t, std::string> first;
  int to_test = 0, to_myapp = 0;
  for (uint16_t sp = 1000; sp < 1100; ++sp) {
    s.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80));
    for (auto* m : s.Take("test")) { first[sp] = "test"; ++to_test; rte_pktmbuf_free(m); }
    for (auto* m : s.Take("myapp")) { first[sp] = "myapp"; ++to_myapp; rte_pktmbuf_free(m); }
  }
  CHECK(to_test + to_myapp == 100);
  CHECK(to_test > 20);  // Maglev spreads connections over both
  CHECK(to_myapp > 20);
  // The service now lists only myapp; established connections to test keep
  // their backend (conntrack), new ones all go to myapp.
  s.Build({Svc({"10.1.0.20"})});
  for (uint16_t sp = 1000; sp < 1100; ++sp) {
    s.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80, 0x10));
    auto at_test = s.Take("test"), at_myapp = s.Take("myapp");
    REQUIRE(at_test.size() + at_myapp.size() == 1);
    REQUIRE((at_test.empty() ? "myapp" : "test") == first[sp]);
    for (auto* m : at_test) rte_pktmbuf_free(m);
    for (auto* m : at_myapp) rte_pktmbuf_free(m);
  }
  s.Send("frontend", Syn("10.1.0.10", 5000, "10.96.0.80", 80));
  auto got = s.Take("myapp");
  CHECK(got.size() == 1);
  for (auto* m : got) rte_pktmbuf_free(m);
}

TEST_CASE("an endpoint's IPv6 frame meets the same fate in the one-pass parse and the general one",
          "[service][drops][differential][ipv6]") {
  // PlainEndpoint6: untagged Ethernet, IPv6 with TCP or UDP right after its
  // header, from the endpoint's own address (to a service frontend, then
  // the general tail: service DNAT). The same frame with an 802.1Q tag takes the general parse (ParseIpv6,
  // ParseL4), anti-spoofing and service stage: each damaged byte, each
  // payload length, must meet the same fate both ways.
  SvcNode s;
  s.n.w.Apply(kMyappFromFrontend);
  s.n.ip = {{"frontend", "fd00:1::10"}, {"test", "fd00:1::11"}, {"myapp", "fd00:1::20"}};
  ServiceSpec svc6;
  svc6.vip = *identity::IpAddr::Parse("fd00:96::80");
  svc6.port = 80;
  svc6.proto = 6;
  svc6.backends.push_back({*identity::IpAddr::Parse("fd00:1::20"), 8080});
  s.Build({svc6});
  auto fate = [&](const Bytes& frame, bool tagged) { return s.FateOf("frontend", frame, tagged); };
  const auto tag = [](const Bytes& f) { return WithVlanTag(f); };
  // To myapp over TCP and UDP, and over TCP to its service's frontend.
  for (int shape = 0; shape < 3; ++shape) {
    const bool tcp = shape != 1;
    INFO((shape == 0 ? "tcp" : shape == 1 ? "udp" : "tcp to the frontend"));
    const Bytes plain = Eth(0x86DD, Ipv6("fd00:1::10", shape == 2 ? "fd00:96::80" : "fd00:1::20",
                                         tcp ? 6 : 17, tcp ? Tcp(40000, 80) : Udp(40001, 53, 12)));
    const Fate intact = fate(plain, false);
    REQUIRE(intact.reason == -1);
    REQUIRE(intact.port == s.n.port.at("myapp"));
    CHECK(fate(plain, false) == intact);
    CHECK(fate(tag(plain), true) == intact);
    const size_t l4_bytes = tcp ? 20 : 8;
    int delivered = 0, dropped = 0;
    for (size_t q = 0; q < 14 + 40 + l4_bytes; ++q) {
      if (q == 12 || q == 13) continue;  // the EtherType
      for (uint8_t x : {0x01, 0x08, 0x40, 0x80, 0xff}) {
        INFO("byte " << q << " ^ " << int(x));
        Bytes f1 = plain;
        f1[q] ^= x;
        const Fate one = fate(f1, false);
        CHECK(one == fate(tag(f1), true));
        ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
      }
    }
    // Every payload length up to the frame's and beyond it.
    const size_t actual = plain.size() - 54;
    for (size_t plen = 0; plen <= actual + 2; ++plen) {
      INFO("payload length " << plen);
      Bytes f1 = plain;
      f1[18] = uint8_t(plen >> 8);
      f1[19] = uint8_t(plen);
      const Fate one = fate(f1, false);
      CHECK(one == fate(tag(f1), true));
      ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
    }
    CHECK(delivered > 20);
    CHECK(dropped > 20);
  }
  // To the IPv6 frontend: translated either way.
  const Bytes to_svc = Eth(0x86DD, Ipv6("fd00:1::10", "fd00:96::80", 6, Tcp(41000, 80)));
  const Fate via_plain = fate(to_svc, false);
  CHECK(via_plain.reason == -1);
  CHECK(via_plain.port == s.n.port.at("myapp"));
  REQUIRE(via_plain.out.size() >= 54);
  CHECK(std::memcmp(&via_plain.out[38], identity::IpAddr::Parse("fd00:1::20")->bytes.data(), 16) == 0);
  CHECK(fate(tag(Eth(0x86DD, Ipv6("fd00:1::10", "fd00:96::80", 6, Tcp(41000, 80)))), true) == via_plain);
  // Spoofed: another endpoint's address from frontend's port.
  CHECK(fate(Eth(0x86DD, Ipv6("fd00:1::11", "fd00:1::20", 6, Tcp(42000, 80))), false).reason ==
        int(DropReason::kInvalidSourceIp));
  CHECK(rte_mempool_avail_count(Pool()) == 1023);  // nothing leaked
}

TEST_CASE("a burst to a frontend: its pins looked up together, each connection keeps its backend",
          "[service][conntrack][maglev]") {
  // ServiceMatch / ServiceTranslate: the burst's pins are looked up in one
  // pass after the parse. Mixed bursts (frontend, direct, a 158, a
  // fragment) must translate as one packet at a time would.
  SvcNode s;
  s.Build({Svc({"10.1.0.11", "10.1.0.20"})});
  auto send_burst = [&](const std::vector<Bytes>& frames) {
    std::vector<rte_mbuf*> ms;
    for (const auto& f : frames) {
      ms.push_back(ToMbuf(Pool(), f));
      REQUIRE(ms.back() != nullptr);
    }
    s.pl->Process(*s.snap, ms.data(), uint16_t(ms.size()), s.n.port.at("frontend"), s.out);
  };
  // Where each packet went: (destination address's last byte, port) by source port.
  auto collect = [&]() {
    std::map<uint16_t, std::pair<uint8_t, uint16_t>> at;
    for (const char* to : {"test", "myapp"}) {
      for (rte_mbuf* m : s.Take(to)) {
        auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
        auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, 34);
        CHECK(TcpChecksumValid(m));
        at[rte_be_to_cpu_16(tcp->src_port)] = {uint8_t(rte_be_to_cpu_32(ip->dst_addr)),
                                               rte_be_to_cpu_16(tcp->dst_port)};
        rte_pktmbuf_free(m);
      }
    }
    return at;
  };
  std::vector<Bytes> burst;
  for (uint16_t sp = 2000; sp < 2024; ++sp) burst.push_back(Syn("10.1.0.10", sp, "10.96.0.80", 80));
  burst.push_back(Syn("10.1.0.10", 3000, "10.1.0.20", 80));  // direct: not translated
  burst.push_back(Syn("10.1.0.10", 3001, "10.96.0.80", 81));  // the VIP's address, another port
  send_burst(burst);
  auto first = collect();
  REQUIRE(first.size() == 25);
  int to_test = 0;
  for (uint16_t sp = 2000; sp < 2024; ++sp) {
    INFO("source port " << sp);
    REQUIRE(first.count(sp) == 1);
    CHECK((first[sp].first == 11 || first[sp].first == 20));
    CHECK(first[sp].second == 8080);
    to_test += first[sp].first == 11;
  }
  CHECK(to_test > 0);  // Maglev spreads them
  CHECK(to_test < 24);
  CHECK(first[3000] == std::make_pair(uint8_t(20), uint16_t(80)));
  CHECK(s.pl->dropped(DropReason::kFibLookupFailed) == 1);  // port 81: no frontend, no route
  // Each backend's replies, one burst per backend, come back from the
  // frontend: the connections were tracked under their translated tuples.
  for (const char* be : {"test", "myapp"}) {
    const uint8_t last = std::string(be) == "test" ? 11 : 20;
    std::vector<rte_mbuf*> ms;
    for (uint16_t sp = 2000; sp < 2024; ++sp) {
      if (first[sp].first != last) continue;
      ms.push_back(ToMbuf(Pool(), Syn(last == 11 ? "10.1.0.11" : "10.1.0.20", 8080, "10.1.0.10", sp, 0x12)));
    }
    s.pl->Process(*s.snap, ms.data(), uint16_t(ms.size()), s.n.port.at(be), s.out);
    auto back = s.Take("frontend");
    CHECK(back.size() == ms.size());
    for (rte_mbuf* m : back) {
      auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
      auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, 34);
      CHECK(rte_be_to_cpu_32(ip->src_addr) == V4("10.96.0.80"));
      CHECK(rte_be_to_cpu_16(tcp->src_port) == 80);
      rte_pktmbuf_free(m);
    }
  }
  // The same connections again, now with the service down to one backend,
  // in another order: each keeps the backend its pin names.
  s.Build({Svc({"10.1.0.20"})});
  burst.clear();
  for (uint16_t sp = 2024; sp-- > 2000;) burst.push_back(Syn("10.1.0.10", sp, "10.96.0.80", 80, 0x10));
  burst.push_back(Syn("10.1.0.10", 2100, "10.96.0.80", 80));  // new: the only backend
  send_burst(burst);
  auto again = collect();
  for (uint16_t sp = 2000; sp < 2024; ++sp) {
    INFO("source port " << sp);
    CHECK(again[sp] == first[sp]);
  }
  CHECK(again[2100] == std::make_pair(uint8_t(20), uint16_t(8080)));
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("a service without serving backends drops with 158", "[service][drops]") {
  SvcNode s;
  s.Build({Svc({})});
  s.Send("frontend", Syn("10.1.0.10", 40000, "10.96.0.80", 80));
  CHECK(s.pl->dropped(DropReason::kServiceBackendNotFound) == 1);
  // Another port of the same address is not the service: routed as usual.
  s.Send("frontend", Syn("10.1.0.10", 40000, "10.96.0.80", 443));
  CHECK(s.pl->dropped(DropReason::kFibLookupFailed) == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);  // nothing leaked
}

TEST_CASE("the frontend filter: every frontend passes it; most other destinations do not",
          "[service]") {
  std::vector<ServiceSpec> specs;
  for (uint32_t i = 0; i < 300; ++i) {
    ServiceSpec sp;
    sp.vip = identity::IpAddr::V4(0x0a600000 + i);
    sp.port = uint16_t(80 + i % 3);
    sp.proto = i % 2 ? 17 : 6;
    if (i % 5 == 0) {  // some IPv6 frontends too
      sp.vip = *identity::IpAddr::Parse("fd00::" + std::to_string(i));
    }
    specs.push_back(sp);
  }
  auto t = ServiceTable::Build(specs);
  REQUIRE(t.ok());
  for (int32_t i = 0; i < int32_t(specs.size()); ++i) {
    const ServiceSpec& sp = specs[size_t(i)];
    const ServiceKey k = MakeServiceKey(sp.vip, sp.port, sp.proto);
    CHECK((*t)->MayBeFrontend(k));
    CHECK((*t)->Lookup(k) == i);  // its own service, in Build's order
    if (k.family == 4) {
      CHECK(Lookup4Of(**t, k) == i);
      uint32_t a;
      std::memcpy(&a, k.addr, 4);
      // As the endpoint parse asks it: from the tuple's head word (family
      // 4, protocol, source port 5555, destination port), any source port.
      const uint64_t head = 4u | uint64_t(k.proto) << 8 | uint64_t(5555 + i) << 32 |
                            uint64_t(k.port) << 48;
      CHECK((*t)->MayBeFrontendOfHead(head, a));
    } else {
      CHECK((*t)->MayBeFrontend6(k.addr, k.port, k.proto));
    }
  }
  // IPv6 pods: the packet-side test agrees with the key's.
  for (uint32_t i = 0; i < 1000; ++i) {
    const ServiceKey k =
        MakeServiceKey(*identity::IpAddr::Parse("fd00:1::" + std::to_string(i)), 80, 6);
    CHECK((*t)->MayBeFrontend(k) == (*t)->MayBeFrontend6(k.addr, 80, 6));
    CHECK((*t)->Lookup(k) == -1);
  }
  // Pods' addresses on the services' ports: the filter answers nearly all
  // (300 frontends in 4,096 or more bits: a few percent pass it).
  int passed = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    const ServiceKey k = MakeServiceKey(identity::IpAddr::V4(0x0a010000 + i), 80, 6);
    uint32_t a;
    std::memcpy(&a, k.addr, 4);
    const uint64_t head = 4u | uint64_t(6) << 8 | uint64_t(40000 + i % 20000) << 32 |
                          uint64_t(80) << 48;
    CHECK((*t)->MayBeFrontend(k) == (*t)->MayBeFrontendOfHead(head, a));
    CHECK((*t)->Lookup(k) == -1);
    CHECK(Lookup4Of(**t, k) == -1);
    passed += (*t)->MayBeFrontend(k);
  }
  CHECK(passed < 1000);
}

TEST_CASE("the frontend index: each of 50,000 services found as itself; a second one on a frontend refused",
          "[service]") {
  // Keys that differ in one field only (address, port, protocol, family)
  // must all be told apart by the index's hash and its comparison.
  std::vector<ServiceSpec> specs;
  for (uint32_t i = 0; i < 50000; ++i) {
    ServiceSpec sp;
    sp.vip = i % 7 == 0 ? *identity::IpAddr::Parse("fd00::" + std::to_string(i / 7))
                        : identity::IpAddr::V4(0x0a600000 + i / 4);
    sp.port = uint16_t(80 + i % 4);
    sp.proto = i % 7 == 0 && i % 2 ? 17 : 6;
    specs.push_back(sp);
  }
  auto t = ServiceTable::Build(specs);
  REQUIRE(t.ok());
  uint32_t wrong = 0, wrong4 = 0, v4 = 0;
  for (uint32_t i = 0; i < specs.size(); ++i) {
    const ServiceKey k = MakeServiceKey(specs[i].vip, specs[i].port, specs[i].proto);
    wrong += (*t)->Lookup(k) != int32_t(i);
    if (k.family == 4) {
      wrong4 += Lookup4Of(**t, k) != int32_t(i);
      ++v4;
    }
  }
  CHECK(wrong == 0);
  CHECK(wrong4 == 0);
  CHECK(v4 > 40000);
  // Lookup4 against Lookup on keys one field or one bit away from a
  // frontend (the probe runs on past the first slot for many of them).
  uint32_t differ = 0, probed = 0;
  for (uint32_t i = 0; i < specs.size(); i += 3) {
    ServiceKey k = MakeServiceKey(specs[i].vip, specs[i].port, specs[i].proto);
    if (k.family != 4) continue;
    for (size_t bit = 8; bit < 64; bit += 5) {  // proto, port, address
      ServiceKey o = k;
      reinterpret_cast<uint8_t*>(&o)[bit / 8] ^= uint8_t(1u << (bit % 8));
      differ += Lookup4Of(**t, o) != (*t)->Lookup(o);
      ++probed;
    }
  }
  CHECK(differ == 0);
  CHECK(probed > 100000);
  // The same addresses and ports under the other protocol, and ports no
  // service has: no service.
  uint32_t found = 0;
  for (uint32_t i = 1; i < specs.size(); i += 7) {
    found += (*t)->Lookup(MakeServiceKey(specs[i].vip, specs[i].port, 17)) >= 0;
    found += (*t)->Lookup(MakeServiceKey(specs[i].vip, 8080, 6)) >= 0;
  }
  CHECK(found == 0);
  specs.push_back(specs[123]);
  auto dup = ServiceTable::Build(specs);
  REQUIRE(!dup.ok());
  CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);
  // The comparison reads every byte of the key.
  const ServiceKey k = MakeServiceKey(specs[7].vip, specs[7].port, specs[7].proto);
  CHECK(ServiceTable::SameKey(k, k));
  for (size_t b = 0; b < sizeof(ServiceKey); ++b) {
    ServiceKey other = k;
    reinterpret_cast<uint8_t*>(&other)[b] ^= 0x10;
    CHECK(!ServiceTable::SameKey(k, other));
  }
  auto none = ServiceTable::Build({});
  REQUIRE(none.ok());
  CHECK((*none)->Lookup(MakeServiceKey(identity::IpAddr::V4(0x0a600000), 80, 6)) == -1);
  CHECK(Lookup4Of(**none, MakeServiceKey(identity::IpAddr::V4(0x0a600000), 80, 6)) == -1);
}

TEST_CASE("an endpoint's frame meets the same fate in the one-pass parse and the general one",
          "[service][drops][differential]") {
  // PlainEndpoint checks an endpoint's usual frame (untagged Ethernet, IPv4
  // without options or fragmentation, TCP or UDP, from the endpoint's own
  // address) in one pass, and a frame to a service frontend then takes the
  // general tail (service DNAT); an 802.1Q tag sends the same frame through
  // the general parse, anti-spoofing and service stage.
  // Each byte damaged, each IPv4 field changed with its checksum kept
  // right, must meet the same fate both ways: the same drop reason, or the
  // same bytes delivered on the same port (the tag aside).
  SvcNode s;
  s.n.w.Apply(kMyappFromFrontend);
  s.Build({Svc({"10.1.0.20"})});  // frontend 10.96.0.80:80/TCP -> myapp:8080
  auto fate = [&](const Bytes& frame, bool tagged) { return s.FateOf("frontend", frame, tagged); };
  const auto tag = [](const Bytes& f) { return WithVlanTag(f); };
  // To myapp over TCP and UDP, and over TCP to its service's frontend.
  for (int shape = 0; shape < 3; ++shape) {
    const bool tcp = shape != 1;
    INFO((shape == 0 ? "tcp" : shape == 1 ? "udp" : "tcp to the frontend"));
    const Bytes plain = shape == 0   ? Syn("10.1.0.10", 40000, "10.1.0.20", 80)
                        : shape == 1 ? Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 17,
                                                        Udp(40001, 53, 12)))
                                     : Syn("10.1.0.10", 40002, "10.96.0.80", 80);
    const Bytes tagged = tag(plain);
    const Fate intact = fate(plain, false);  // a new connection
    REQUIRE(intact.reason == -1);
    REQUIRE(intact.port == s.n.port.at("myapp"));
    CHECK(fate(plain, false) == intact);  // established
    CHECK(fate(tagged, true) == intact);
    const size_t l4_bytes = tcp ? 20 : 8;
    int delivered = 0, dropped = 0;
    for (size_t q = 0; q < 14 + 20 + l4_bytes; ++q) {
      if (q == 12 || q == 13) continue;  // the EtherType: not the same frame with a tag
      for (uint8_t x : {0x01, 0x08, 0x40, 0x80, 0xff}) {
        INFO("byte " << q << " ^ " << int(x));
        Bytes f1 = plain, f2 = tagged;
        f1[q] ^= x;
        f2[q < 12 ? q : q + 4] ^= x;
        const Fate one = fate(f1, false);
        CHECK(one == fate(f2, true));
        ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
      }
    }
    // IPv4 fields with the checksum kept right: lengths, fragment fields,
    // protocol, TTL, addresses (a source not frontend's own is spoofed: 132).
    for (size_t q = 14; q < 34; ++q) {
      if (q == 24 || q == 25) continue;  // the checksum itself
      for (uint8_t x : {0x01, 0x02, 0x20, 0x40, 0x80, 0xff}) {
        INFO("IPv4 byte " << q << " ^ " << int(x) << ", checksum refreshed");
        Bytes f1 = plain, f2 = tagged;
        f1[q] ^= x;
        f2[q + 4] ^= x;
        RefreshIpv4Checksum(f1, 14);
        RefreshIpv4Checksum(f2, 18);
        const Fate one = fate(f1, false);
        CHECK(one == fate(f2, true));
        ++(one.reason == -1 && !one.out.empty() ? delivered : dropped);
      }
    }
    // Both fates were met often: the loops exercise both ways of each path.
    CHECK(delivered > 20);
    CHECK(dropped > 20);
  }
  // To the service frontend: translated the same either way (the filter
  // sends the plain frame to the general stages).
  const Bytes to_svc = Syn("10.1.0.10", 41000, "10.96.0.80", 80);
  const Fate via_plain = fate(to_svc, false);
  CHECK(via_plain.reason == -1);
  CHECK(via_plain.port == s.n.port.at("myapp"));
  REQUIRE(via_plain.out.size() >= 38);
  CHECK(via_plain.out[30] == 10);  // 10.1.0.20, the backend
  CHECK(via_plain.out[33] == 20);
  CHECK(fate(tag(Syn("10.1.0.10", 41000, "10.96.0.80", 80)), true) == via_plain);
  // Spoofed: another endpoint's address from frontend's port.
  CHECK(fate(Syn("10.1.0.11", 42000, "10.1.0.20", 80), false).reason ==
        int(DropReason::kInvalidSourceIp));
  CHECK(rte_mempool_avail_count(Pool()) == 1023);  // nothing leaked
}

TEST_CASE("sessionAffinity ClientIP keeps a client on its backend",
          "[service][affinity][cilium:Documentation/network/kubernetes/kubeproxy-free.rst session affinity]") {
  auto aff = AffinityTable::Create(1024);
  REQUIRE(aff.ok());
  SvcNode s;
  s.pl = std::make_unique<Pipeline>(*s.cell, 0, s.ct.get(), nullptr, aff->get());
  auto where = [&](uint16_t sport) {  // the endpoint that got this connection
    s.Send("frontend", Syn("10.1.0.10", sport, "10.96.0.80", 80));
    std::string got;
    for (const char* ep : {"test", "myapp"}) {
      for (rte_mbuf* m : s.Take(ep)) {
        got = ep;
        rte_pktmbuf_free(m);
      }
    }
    return got;
  };
  SECTION("without affinity new connections spread over both backends") {
    s.Build({Svc({"10.1.0.11", "10.1.0.20"})});
    std::set<std::string> seen;
    for (uint16_t p = 41000; p < 41064; ++p) seen.insert(where(p));
    CHECK(seen == std::set<std::string>{"test", "myapp"});
  }
  SECTION("with affinity every connection of the client goes to one backend") {
    ServiceSpec spec = Svc({"10.1.0.11", "10.1.0.20"});
    spec.affinity_timeout_s = 10800;
    s.Build({spec});
    std::set<std::string> seen;
    for (uint16_t p = 42000; p < 42064; ++p) seen.insert(where(p));
    REQUIRE(seen.size() == 1);
    std::string first = *seen.begin();
    CHECK_FALSE(first.empty());
    // Its backend leaves the service: the client is re-balanced to the other
    // (and stays there).
    ServiceSpec fewer = Svc({first == "test" ? "10.1.0.20" : "10.1.0.11"});
    fewer.affinity_timeout_s = 10800;
    s.Build({fewer});
    std::set<std::string> after;
    for (uint16_t p = 43000; p < 43016; ++p) after.insert(where(p));
    CHECK(after == std::set<std::string>{first == "test" ? "myapp" : "test"});
    // Both come back: the client keeps the backend it has now.
    s.Build({spec});
    std::set<std::string> back;
    for (uint16_t p = 44000; p < 44016; ++p) back.insert(where(p));
    CHECK(back == after);
  }
}

TEST_CASE("an affinity entry expires and never names a backend that left", "[service][affinity]") {
  auto aff = AffinityTable::Create(64);
  REQUIRE(aff.ok());
  auto table = ServiceTable::Build({Svc({"10.1.0.11", "10.1.0.20"})});
  REQUIRE(table.ok());
  ServiceKey fk = (*table)->Frontend(0);
  AffinityKey k;
  k.family = 4;
  k.client[0] = 10, k.client[3] = 10;
  k.frontend = fk;
  int32_t svc = (*table)->Lookup(fk);
  REQUIRE(svc == 0);
  CHECK((*aff)->Find(k, **table, svc, 100) == -1);
  (*aff)->Remember(k, **table, svc, (*table)->First(svc) + 1, 1000);
  CHECK((*aff)->Find(k, **table, svc, 999) == int32_t((*table)->First(svc) + 1));
  CHECK((*aff)->Find(k, **table, svc, 1000) == -1);  // expired
  (*aff)->Remember(k, **table, svc, (*table)->First(svc) + 1, 5000);
  // Another snapshot where position 1 holds a different backend.
  auto other = ServiceTable::Build({Svc({"10.1.0.11", "10.1.0.99"})});
  REQUIRE(other.ok());
  CHECK((*aff)->Find(k, **other, 0, 10) == -1);
  auto shorter = ServiceTable::Build({Svc({"10.1.0.11"})});
  REQUIRE(shorter.ok());
  CHECK((*aff)->Find(k, **shorter, 0, 10) == -1);
  // The backend at another position: found there.
  auto moved = ServiceTable::Build({Svc({"10.1.0.20", "10.1.0.11"})});
  REQUIRE(moved.ok());
  CHECK((*aff)->Find(k, **moved, 0, 10) == int32_t((*moved)->First(0)));
}

TEST_CASE("expired affinity entries are collected in steps, and new clients get affinity again",
          "[service][affinity][gc]") {
  auto cell = RcuCell<Snapshot>::Create(1);
  REQUIRE(cell.ok());
  REQUIRE((*cell)->RegisterReader(0).ok());
  (*cell)->Online(0);
  auto aff = AffinityTable::Create(64, (*cell)->qsbr());
  REQUIRE(aff.ok());
  auto table = ServiceTable::Build({Svc({"10.1.0.11", "10.1.0.20"})});
  REQUIRE(table.ok());
  auto key = [&](uint8_t i) {
    AffinityKey k;
    k.family = 4;
    k.client[0] = 10, k.client[3] = i;
    k.frontend = (*table)->Frontend(0);
    return k;
  };
  for (uint8_t i = 0; i < 40; ++i) {
    (*aff)->Remember(key(i), **table, 0, (*table)->First(0), i < 30 ? 1000 : 9000);
  }
  CHECK((*aff)->size() == 40);
  // Fill the table: without collection the next clients get no affinity.
  for (uint8_t i = 40; i < 200 && (*aff)->full() == 0; ++i) {
    (*aff)->Remember(key(i), **table, 0, (*table)->First(0), 1000);
  }
  REQUIRE((*aff)->full() > 0);
  uint32_t before = (*aff)->size();
  uint32_t deleted = 0;
  for (int step = 0; step < 200; ++step) deleted += (*aff)->Collect(2000, 8);  // small steps
  CHECK(deleted == before - 10);  // everything but the 10 entries valid until 9000
  CHECK((*aff)->Find(key(35), **table, 0, 2000) == int32_t((*table)->First(0)));
  // New clients get affinity again (their bucket slots were freed by the
  // deletes; the key-store slots return after the workers' grace period).
  uint64_t full = (*aff)->full();
  for (uint8_t i = 200; i < 220; ++i) (*aff)->Remember(key(i), **table, 0, (*table)->First(0), 9000);
  CHECK((*aff)->full() == full);
  CHECK((*aff)->Find(key(219), **table, 0, 2000) == int32_t((*table)->First(0)));
  (*cell)->Quiescent(0);
  CHECK((*aff)->Collect(2000, 1000) == 0);  // nothing else has expired; retired slots freed
  CHECK((*aff)->size() == 30);
  (*cell)->Offline(0);
}

namespace {

// Cilium's bpf/lib/jhash.h (Linux include/linux/jhash.h), written out here
// independently of DPDK's rte_jhash that the datapath uses.
uint32_t Rol(uint32_t w, int s) { return (w << s) | (w >> (32 - s)); }
void Mix(uint32_t& a, uint32_t& b, uint32_t& c) {
  a -= c; a ^= Rol(c, 4);  c += b;
  b -= a; b ^= Rol(a, 6);  a += c;
  c -= b; c ^= Rol(b, 8);  b += a;
  a -= c; a ^= Rol(c, 16); c += b;
  b -= a; b ^= Rol(a, 19); a += c;
  c -= b; c ^= Rol(b, 4);  b += a;
}
void Final(uint32_t& a, uint32_t& b, uint32_t& c) {
  c ^= b; c -= Rol(b, 14);
  a ^= c; a -= Rol(c, 11);
  b ^= a; b -= Rol(a, 25);
  c ^= b; c -= Rol(b, 16);
  a ^= c; a -= Rol(c, 4);
  b ^= a; b -= Rol(a, 14);
  c ^= b; c -= Rol(b, 24);
}
uint32_t Jhash3Words(uint32_t a, uint32_t b, uint32_t c, uint32_t initval) {
  initval += 0xdeadbeef + (3 << 2);  // JHASH_INITVAL + 3 words
  a += initval;
  b += initval;
  c += initval;
  Final(a, b, c);
  return c;
}
// bytes -> the little-endian word Cilium's HASH_WORD32_LE/HASH_WORD16_LE read
uint32_t Le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }
uint32_t Le16(uint16_t host_port) { return uint32_t(host_port >> 8) | uint32_t(host_port & 0xff) << 8; }

}  // namespace

TEST_CASE("Cilium's Maglev lookup hash: jhash over client address, ports, protocol; no service address",
          "[service][maglev][cilium:bpf/lib/hash.h __hash_from_tuple_v4/v6]") {
  auto seeds = *lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed);
  const uint8_t c4[4] = {10, 1, 0, 10};
  // lb4_select_backend_id_maglev: sport = client port (0 with affinity),
  // dport = service port; b = dport << 16 | sport.
  uint32_t want = Jhash3Words(Le32(c4), Le16(80) << 16 | Le16(40000), 6, seeds.jhash_v4);
  CHECK(LbFlowHash(4, c4, 40000, 80, 6, seeds.jhash_v4) == want);
  CHECK(LbFlowHash(4, c4, 40001, 80, 6, seeds.jhash_v4) != want);
  CHECK(LbFlowHash(4, c4, 40000, 80, 17, seeds.jhash_v4) != want);
  CHECK(LbFlowHash(4, c4, 40000, 80, 6, seeds.jhash_v4 + 1) != want);
  CHECK(LbFlowHash(4, c4, 0, 80, 6, seeds.jhash_v4) ==
        Jhash3Words(Le32(c4), Le16(80) << 16, 6, seeds.jhash_v4));
  // The port halves are not interchangeable.
  CHECK(LbFlowHash(4, c4, 80, 40000, 6, seeds.jhash_v4) != want);

  const uint8_t c6[16] = {0xfd, 0, 0, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a};
  uint32_t a = Le32(c6), b = Le32(c6 + 4), c = Le32(c6 + 8);
  Mix(a, b, c);
  a += Le32(c6 + 12);
  b += Le16(443) << 16 | Le16(51000);
  c += 6;
  Mix(a, b, c);
  a += seeds.jhash_v6;
  Final(a, b, c);
  CHECK(LbFlowHash(6, c6, 51000, 443, 6, seeds.jhash_v6) == c);
  CHECK(LbFlowHash(6, c6, 51001, 443, 6, seeds.jhash_v6) != c);
}

TEST_CASE("lb-algorithm maglev: the backend is the table's entry at Cilium's hash % M",
          "[service][maglev][cilium:bpf/lib/lb.h lb4_select_backend_id_maglev]") {
  auto seeds = *lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed);
  ServiceSpec spec = Svc({"10.1.0.11", "10.1.0.20"});
  spec.hash_seed_v4 = seeds.jhash_v4;
  spec.hash_seed_v6 = seeds.jhash_v6;
  SvcNode s;
  s.Build({spec});
  const uint8_t client[4] = {10, 1, 0, 10};
  int checked = 0;
  for (uint16_t sp = 2000; sp < 2064; ++sp) {
    s.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80));
    uint32_t e = spec.maglev[LbFlowHash(4, client, sp, 80, 6, seeds.jhash_v4) % spec.maglev.size()];
    std::string want = e == 0 ? "test" : "myapp";  // backends in spec order
    auto at_test = s.Take("test"), at_myapp = s.Take("myapp");
    REQUIRE(at_test.size() + at_myapp.size() == 1);
    CHECK((at_test.empty() ? "myapp" : "test") == want);
    for (auto* m : at_test) rte_pktmbuf_free(m);
    for (auto* m : at_myapp) rte_pktmbuf_free(m);
    ++checked;
  }
  CHECK(checked == 64);
}

TEST_CASE("without lb-algorithm maglev: a random backend per connection, kept by conntrack",
          "[service][random][cilium:bpf/lib/lb.h lb4_select_backend_id_random]") {
  ServiceSpec spec = Svc({"10.1.0.11", "10.1.0.20"});
  spec.maglev.clear();  // Cilium's default algorithm
  SvcNode s;
  s.Build({spec});
  std::map<std::string, int> used;
  std::map<uint16_t, std::string> backend_of;
  for (uint16_t sp = 3000; sp < 3200; ++sp) {
    s.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80));
    for (const char* b : {"test", "myapp"}) {
      for (auto* m : s.Take(b)) {
        ++used[b];
        backend_of[sp] = b;
        rte_pktmbuf_free(m);
      }
    }
  }
  REQUIRE(backend_of.size() == 200);
  // 200 fair coin flips: each side at least 60 (fails with p < 1e-8).
  CHECK(used["test"] >= 60);
  CHECK(used["myapp"] >= 60);
  // The same client port twice over the same connection: the same backend.
  for (uint16_t sp = 3000; sp < 3020; ++sp) {
    s.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80, 0x10));
    auto at_test = s.Take("test"), at_myapp = s.Take("myapp");
    REQUIRE(at_test.size() + at_myapp.size() == 1);
    CHECK((at_test.empty() ? "myapp" : "test") == backend_of[sp]);
    for (auto* m : at_test) rte_pktmbuf_free(m);
    for (auto* m : at_myapp) rte_pktmbuf_free(m);
  }
  // Random, not a function of the flow: a fresh table (no conntrack state)
  // picks differently for some of the same client ports.
  SvcNode again;
  again.Build({spec});
  int differ = 0;
  for (uint16_t sp = 3000; sp < 3200; ++sp) {
    again.Send("frontend", Syn("10.1.0.10", sp, "10.96.0.80", 80));
    auto at_test = again.Take("test"), at_myapp = again.Take("myapp");
    REQUIRE(at_test.size() + at_myapp.size() == 1);
    differ += (at_test.empty() ? "myapp" : "test") != backend_of[sp];
    for (auto* m : at_test) rte_pktmbuf_free(m);
    for (auto* m : at_myapp) rte_pktmbuf_free(m);
  }
  CHECK(differ > 40);  // ~100 expected; a flow hash would give 0
}

TEST_CASE("NAT updates checksums incrementally: a wrong one stays wrong, UDP's none stays none",
          "[service][checksum][cilium:bpf/lib/lb.h lb4_xlate (l3/l4_csum_replace)]") {
  SvcNode s;
  ServiceSpec tcp = Svc({"10.1.0.20"});
  ServiceSpec udp = tcp;
  udp.proto = 17;
  s.Build({tcp, udp});
  // A TCP segment whose checksum is off by one: still off by one after DNAT
  // (a recomputed checksum would pass on a corrupted segment).
  // The damage: the stored checksum minus the right one, in ones' complement.
  auto damage = [](uint8_t* l3) {
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(l3);
    auto* tcph = reinterpret_cast<rte_tcp_hdr*>(l3 + 20);
    uint16_t have = rte_be_to_cpu_16(tcph->cksum);
    tcph->cksum = 0;
    uint16_t want = rte_be_to_cpu_16(rte_ipv4_udptcp_cksum(ip, tcph));
    tcph->cksum = rte_cpu_to_be_16(have);
    uint32_t d = uint32_t(have) + uint16_t(~want);
    return uint16_t((d & 0xffff) + (d >> 16));
  };
  Bytes f = Syn("10.1.0.10", 40000, "10.96.0.80", 80);
  f[14 + 20 + 17] ^= 0x01;
  const uint16_t arrived = damage(&f[14]);
  REQUIRE(arrived != 0);
  s.Send("frontend", f);
  auto got = s.Take("myapp");
  REQUIRE(got.size() == 1);
  CHECK(!TcpChecksumValid(got[0]));
  CHECK(damage(rte_pktmbuf_mtod_offset(got[0], uint8_t*, 14)) == arrived);
  rte_pktmbuf_free(got[0]);
  // UDP without a checksum (0 over IPv4) keeps none; with one, it stays valid.
  for (bool with_cksum : {false, true}) {
    INFO("udp checksum " << with_cksum);
    Bytes u = Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.96.0.80"), 17, Udp(uint16_t(41000 + with_cksum), 80)));
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(&u[14]);
    auto* uh = reinterpret_cast<rte_udp_hdr*>(&u[34]);
    if (with_cksum) uh->dgram_cksum = rte_ipv4_udptcp_cksum(ip, uh);
    s.Send("frontend", u);
    got = s.Take("myapp");
    REQUIRE(got.size() == 1);
    ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
    uh = rte_pktmbuf_mtod_offset(got[0], rte_udp_hdr*, 34);
    CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("10.1.0.20"));
    CHECK(rte_be_to_cpu_16(uh->dst_port) == 8080);
    CHECK(rte_raw_cksum(ip, 20) == 0xffff);
    if (with_cksum) {
      const uint16_t have = uh->dgram_cksum;
      uh->dgram_cksum = 0;
      CHECK(have != 0);
      CHECK(have == rte_ipv4_udptcp_cksum(ip, uh));
    } else {
      CHECK(uh->dgram_cksum == 0);
    }
    rte_pktmbuf_free(got[0]);
  }
}

namespace {
// CRC32c bit by bit (RFC 9260 Appendix A: reflected polynomial 0x82F63B78,
// initial and final inversion), stored least significant byte first.
uint32_t Crc32c(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
  }
  return ~c;
}
void PutSctpCrc(uint8_t* sctp, size_t n) {
  std::memset(sctp + 8, 0, 4);
  uint32_t c = Crc32c(sctp, n);
  for (int i = 0; i < 4; ++i) sctp[8 + i] = uint8_t(c >> (8 * i));
}
bool SctpCrcRight(uint8_t* sctp, size_t n) {
  uint8_t have[4];
  std::memcpy(have, sctp + 8, 4);
  PutSctpCrc(sctp, n);
  bool ok = std::memcmp(have, sctp + 8, 4) == 0;
  std::memcpy(sctp + 8, have, 4);
  return ok;
}
}  // namespace

TEST_CASE("SCTP through a service: the CRC32c is computed again over the translated ports",
          "[service][checksum][sctp]") {
  const char* nine = "123456789";  // CRC-32C's check value (the CRC RevEng catalogue)
  REQUIRE(Crc32c(reinterpret_cast<const uint8_t*>(nine), 9) == 0xe3069283u);
  SvcNode s;
  ServiceSpec sctp = Svc({"10.1.0.20"});
  sctp.proto = 132;
  s.Build({sctp});
  for (bool right : {true, false}) {
    INFO("arrived with a right CRC " << right);
    Bytes sc = Sctp(uint16_t(5000 + right), 80);
    sc.resize(sc.size() + 16, 0x5a);  // a chunk's worth of bytes
    PutSctpCrc(sc.data(), sc.size());
    if (!right) sc[8] ^= 0x40;
    Bytes f = Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.96.0.80"), 132, sc));
    s.Send("frontend", f);
    auto got = s.Take("myapp");
    REQUIRE(got.size() == 1);
    uint8_t* l4 = rte_pktmbuf_mtod_offset(got[0], uint8_t*, 34);
    CHECK((l4[2] << 8 | l4[3]) == 8080);
    CHECK(SctpCrcRight(l4, sc.size()) == right);  // a wrong one is not made right
    rte_pktmbuf_free(got[0]);
  }
}

TEST_CASE("an IPv6 service: DNAT and reverse NAT keep TCP and UDP checksums valid",
          "[service][checksum][ipv6]") {
  SvcNode s;
  s.n.ip = {{"frontend", "fd00:1::10"}, {"test", "fd00:1::11"}, {"myapp", "fd00:1::20"}};
  ServiceSpec tcp;
  tcp.vip = *identity::IpAddr::Parse("fd00:96::80");
  tcp.port = 80;
  tcp.proto = 6;
  tcp.backends.push_back({*identity::IpAddr::Parse("fd00:1::20"), 8080});
  tcp.maglev = lb::MaglevTable(
      {lb::MaglevBackendKey(*identity::IpAddr::Parse("fd00:1::20"), 8080, "TCP")}, 251,
      lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed)->murmur);
  ServiceSpec udp = tcp;
  udp.proto = 17;
  s.Build({tcp, udp});
  auto valid = [](rte_mbuf* m, size_t ck) {
    auto* ip6 = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, 14);
    uint8_t* l4 = rte_pktmbuf_mtod_offset(m, uint8_t*, 54);
    uint16_t have;
    std::memcpy(&have, l4 + ck, 2);
    l4[ck] = l4[ck + 1] = 0;
    uint16_t want = rte_ipv6_udptcp_cksum(ip6, l4);
    std::memcpy(l4 + ck, &have, 2);
    return have == want;
  };
  for (uint8_t proto : {uint8_t(6), uint8_t(17)}) {
    INFO("protocol " << int(proto));
    const size_t ck = proto == 6 ? 16 : 6;
    auto l4 = [&](uint16_t sport, uint16_t dport, uint8_t flags) {
      return proto == 6 ? Tcp(sport, dport, flags) : Udp(sport, dport);
    };
    s.Send("frontend", Eth(0x86DD, Ipv6("fd00:1::10", "fd00:96::80", proto, l4(40000, 80, 0x02))));
    auto got = s.Take("myapp");
    REQUIRE(got.size() == 1);
    auto* ip6 = rte_pktmbuf_mtod_offset(got[0], rte_ipv6_hdr*, 14);
    CHECK(std::memcmp(ip6->dst_addr, identity::IpAddr::Parse("fd00:1::20")->bytes.data(), 16) == 0);
    CHECK(valid(got[0], ck));
    rte_pktmbuf_free(got[0]);
    s.Send("myapp", Eth(0x86DD, Ipv6("fd00:1::20", "fd00:1::10", proto, l4(8080, 40000, 0x12))));
    got = s.Take("frontend");
    REQUIRE(got.size() == 1);
    ip6 = rte_pktmbuf_mtod_offset(got[0], rte_ipv6_hdr*, 14);
    CHECK(std::memcmp(ip6->src_addr, identity::IpAddr::Parse("fd00:96::80")->bytes.data(), 16) == 0);
    CHECK(valid(got[0], ck));
    rte_pktmbuf_free(got[0]);
  }
}
