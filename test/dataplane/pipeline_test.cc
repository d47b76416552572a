// Packet-in/packet-out through the pipeline: in-memory bursts (Process) and
// real net_ring ports (PollOnce), snapshots published through an RcuCell.
#include <catch2/catch.hpp>

#include <rte_arp.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ring.h>

#include "dataplane/pipeline.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

TEST_CASE("local forwarding: MACs rewritten, TTL decremented, checksum still valid",
          "[pipeline]") {
  Node n;
  auto cell = RcuCell<Snapshot>::Create(1);
  REQUIRE(cell.ok());
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.1.0.20", 80));
  auto got = r.Take(n.port["myapp"]);
  REQUIRE(got.size() == 1);
  auto* eth = rte_pktmbuf_mtod(got[0], rte_ether_hdr*);
  CHECK(rte_is_same_ether_addr(&eth->src_addr, &kRouter));
  rte_ether_addr myapp_mac = Mac(uint8_t(n.port["myapp"] + 1));
  CHECK(rte_is_same_ether_addr(&eth->dst_addr, &myapp_mac));
  auto* ip = rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14);
  CHECK(ip->time_to_live == 63);
  CHECK(rte_raw_cksum(ip, 20) == 0xffff);  // RFC 1624 update kept it valid
  CHECK(Meta(got[0])->src_identity == n.w.Get("frontend").id);
  CHECK(pl.counters().forwarded == 1);
  rte_pktmbuf_free(got[0]);
}

TEST_CASE("policy at the destination: 133 for no allow, 181 for a deny rule, counted per port",
          "[pipeline][policy]") {
  Node n;
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "22"}]}]}]
)");
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.1.0.20", 80));
  r.Send(*snap, n.port["test"], TcpFrame("10.1.0.11", "10.1.0.20", 80));
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.1.0.20", 22));
  auto got = r.Take(n.port["myapp"]);
  CHECK(got.size() == 1);
  for (auto* m : got) rte_pktmbuf_free(m);
  CHECK(pl.counters().drops[n.port["test"]].by_reason[133] == 1);
  CHECK(pl.counters().drops[n.port["frontend"]].by_reason[181] == 1);
  CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);  // every drop was freed
}

TEST_CASE("egress policy at the source endpoint", "[pipeline][policy]") {
  Node n;
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe-egress}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress: [{toEndpoints: [{matchLabels: {app: test}}]}]
)");
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.1.0.20", 80));
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.1.0.11", 80));
  CHECK(r.Take(n.port["myapp"]).empty());
  auto got = r.Take(n.port["test"]);
  CHECK(got.size() == 1);
  for (auto* m : got) rte_pktmbuf_free(m);
  CHECK(pl.counters().drops[n.port["frontend"]].by_reason[133] == 1);
}

TEST_CASE("anti-spoofing, TTL, fragments, unknown destinations: each its Cilium reason",
          "[pipeline][drops]") {
  Node n;
  identity::IpCacheEntry remote;
  remote.id = 2 << 16 | 5;
  remote.tunnel_endpoint = *identity::IpAddr::Parse("192.168.1.2");
  n.w.ipcache.Upsert(*identity::Prefix::Parse("10.2.0.20/32"), remote);
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  uint16_t fe = n.port["frontend"];
  r.Send(*snap, fe, TcpFrame("10.1.0.99", "10.1.0.20", 80));             // spoofed source
  r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80, 1));          // TTL 1
  r.Send(*snap, fe, Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 17, Bytes(16, 0), {}, 3)));
  r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.2.0.20", 80));             // remote: no fabric yet
  r.Send(*snap, fe, TcpFrame("10.1.0.10", "8.8.8.8", 53));               // outside: no uplink yet
  r.Send(*snap, fe, Bytes(20, 0));                                       // garbage
  CHECK(r.Take(n.port["myapp"]).empty());
  const auto& d = pl.counters().drops[fe].by_reason;
  CHECK(d[132] == 1);
  CHECK(d[196] == 1);
  CHECK(d[175] == 1);
  CHECK(d[160] == 1);
  CHECK(d[169] == 1);
  CHECK(d[139] == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("an endpoint without an IPv4 address sends no IPv4, not even from 0.0.0.0",
          "[pipeline][drops]") {
  Node n;
  n.w.Apply(kMyappFromFrontend);
  n.ip["frontend"] = "fd00::10";  // IPv6 only
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  const uint16_t fe = n.port["frontend"];
  r.Send(*snap, fe, TcpFrame("0.0.0.0", "10.1.0.20", 80));
  r.Send(*snap, fe, Eth(0x0800, Ipv4(0, V4("10.1.0.20"), 17, Udp(40000, 53))));
  CHECK(r.Take(n.port["myapp"]).empty());
  CHECK(pl.counters().drops[fe].by_reason[132] == 2);
  // Its own IPv6 address is its own.
  r.Send(*snap, fe, Eth(0x86dd, Ipv6("fd00::10", "fd00::20", 17, Udp(40000, 53))));
  CHECK(pl.counters().drops[fe].by_reason[132] == 2);
  for (auto* m : r.Take(n.port["myapp"])) rte_pktmbuf_free(m);
  for (uint16_t p = 0; p < dataplane::kMaxPorts; ++p) {
    for (auto* m : r.Take(p)) rte_pktmbuf_free(m);
  }
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("ARP: requests for the gateway are answered with the router MAC", "[pipeline][arp]") {
  Node n;
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  uint16_t fe = n.port["frontend"];
  r.Send(*snap, fe, Eth(0x0806, Arp(1, V4("10.1.0.10"), V4("10.1.0.1"))));
  r.Send(*snap, fe, Eth(0x0806, Arp(1, V4("10.1.0.10"), V4("10.1.0.10"))));  // DAD: silent
  auto got = r.Take(fe);
  REQUIRE(got.size() == 1);
  auto* arp = rte_pktmbuf_mtod_offset(got[0], rte_arp_hdr*, 14);
  CHECK(rte_be_to_cpu_16(arp->arp_opcode) == RTE_ARP_OP_REPLY);
  CHECK(rte_is_same_ether_addr(&arp->arp_data.arp_sha, &kRouter));
  CHECK(rte_be_to_cpu_32(arp->arp_data.arp_sip) == V4("10.1.0.1"));
  CHECK(rte_be_to_cpu_32(arp->arp_data.arp_tip) == V4("10.1.0.10"));
  rte_pktmbuf_free(got[0]);
  CHECK(pl.counters().arp_replies == 1);
  CHECK(pl.counters().arp_ignored == 1);
}

TEST_CASE("IPv6 forwarding between endpoints with hop limit", "[pipeline][ipv6]") {
  Node n;
  n.ip = {{"frontend", "fd00:1::10"}, {"test", "fd00:1::11"}, {"myapp", "fd00:1::20"}};
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], Eth(0x86DD, Ipv6("fd00:1::10", "fd00:1::20", 6, Tcp(1, 80))));
  r.Send(*snap, n.port["frontend"], Eth(0x86DD, Ipv6("fd00:1::99", "fd00:1::20", 6, Tcp(1, 80))));
  auto got = r.Take(n.port["myapp"]);
  REQUIRE(got.size() == 1);
  CHECK(rte_pktmbuf_mtod_offset(got[0], rte_ipv6_hdr*, 14)->hop_limits == 63);
  rte_pktmbuf_free(got[0]);
  CHECK(pl.dropped(DropReason::kInvalidSourceIp) == 1);
}

TEST_CASE("net_ring ports: RX, verdicts, TX through real ethdevs; a new snapshot takes effect",
          "[pipeline][ring]") {
  Node n;
  // Three net_ring ports, each with its own RX and TX ring.
  rte_ring* rx[3];
  rte_ring* tx[3];
  uint16_t ports[3];
  for (int i = 0; i < 3; ++i) {
    std::string nm = "plr" + std::to_string(i);
    rx[i] = rte_ring_create((nm + "rx").c_str(), 256, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx[i] = rte_ring_create((nm + "tx").c_str(), 256, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    REQUIRE((rx[i] && tx[i]));
    int id = rte_eth_from_rings(nm.c_str(), &rx[i], 1, &tx[i], 1, SOCKET_ID_ANY);
    REQUIRE(id >= 0);
    ports[i] = uint16_t(id);
    rte_eth_conf conf{};
    REQUIRE(rte_eth_dev_configure(ports[i], 1, 1, &conf) == 0);
    REQUIRE(rte_eth_rx_queue_setup(ports[i], 0, 256, SOCKET_ID_ANY, nullptr, Pool()) == 0);
    REQUIRE(rte_eth_tx_queue_setup(ports[i], 0, 256, SOCKET_ID_ANY, nullptr) == 0);
    REQUIRE(rte_eth_dev_start(ports[i]) == 0);
  }
  REQUIRE(ports[1] == ports[0] + 1);
  REQUIRE(ports[2] == ports[0] + 2);
  auto cell = RcuCell<Snapshot>::Create(1);
  REQUIRE((*cell)->RegisterReader(0).ok());
  (*cell)->Online(0);
  Pipeline pl(**cell, 0);
  (*cell)->Publish(n.Build(ports[0]));
  auto inject = [&](int i, const Bytes& f) {
    rte_mbuf* m = ToMbuf(Pool(), f);
    REQUIRE(rte_ring_enqueue(rx[i], m) == 0);
  };
  auto drain = [&](int i) {
    std::vector<rte_mbuf*> v;
    void* o;
    while (rte_ring_dequeue(tx[i], &o) == 0) v.push_back(static_cast<rte_mbuf*>(o));
    return v;
  };
  // Ports are assigned in compile order: frontend, myapp, test (by name).
  int fe = n.port["frontend"] - ports[0], my = n.port["myapp"] - ports[0],
      te = n.port["test"] - ports[0];
  inject(te, TcpFrame("10.1.0.11", "10.1.0.20", 80));
  CHECK(pl.PollOnce(ports, 3) == 1);
  auto out = drain(my);
  CHECK(out.size() == 1);
  for (auto* m : out) rte_pktmbuf_free(m);
  // The policy arrives: a new snapshot, one store; the next packet obeys it.
  n.w.Apply(kMyappFromFrontend);
  (*cell)->Publish(n.Build(ports[0]));
  inject(te, TcpFrame("10.1.0.11", "10.1.0.20", 80));
  inject(fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
  CHECK(pl.PollOnce(ports, 3) == 2);
  out = drain(my);
  REQUIRE(out.size() == 1);
  CHECK(Meta(out[0])->src_identity == n.w.Get("frontend").id);
  for (auto* m : out) rte_pktmbuf_free(m);
  CHECK(pl.counters().drops[ports[te]].by_reason[133] == 1);
  // The old snapshot is reclaimed once the worker has passed quiescence.
  CHECK((*cell)->Reclaim() == 1);
  CHECK(pl.counters().tx == 2);
  // Busy time: the two iterations that received packets, not the idle one.
  CHECK(pl.counters().busy_polls == 2);
  const uint64_t busy = pl.counters().busy_cycles;
  CHECK(busy > 0);
  CHECK(pl.PollOnce(ports, 3) == 0);
  CHECK(pl.counters().busy_polls == 2);
  CHECK(pl.counters().busy_cycles == busy);
  for (int i = 0; i < 3; ++i) {
    rte_eth_dev_stop(ports[i]);
    rte_eth_dev_close(ports[i]);
  }
}

TEST_CASE("NDP: neighbour solicitations for the gateway get the router MAC",
          "[pipeline][ndp][rfc4861]") {
  Node n;
  n.ip = {{"frontend", "fd00:1::10"}, {"test", "fd00:1::11"}, {"myapp", "fd00:1::20"}};
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  uint16_t fe = n.port["frontend"];
  auto ns = [](const char* target) {
    Bytes b = {135, 0, 0, 0, 0, 0, 0, 0};
    uint8_t t[16];
    inet_pton(AF_INET6, target, t);
    b.insert(b.end(), t, t + 16);
    Bytes opt = {1, 1, 0x02, 0, 0, 0, 0, 0x01};  // source link-layer address
    return Cat(b, opt);
  };
  r.Send(*snap, fe, Eth(0x86DD, Ipv6("fe80::1", "ff02::1:ff00:1", 58, ns("fd00:1::1"), 255)));
  r.Send(*snap, fe, Eth(0x86DD, Ipv6("::", "ff02::1:ff00:10", 58, ns("fd00:1::10"), 255)));    // DAD
  r.Send(*snap, fe, Eth(0x86DD, Ipv6("fe80::1", "ff02::1:ff00:1", 58, ns("fd00:1::1"), 64)));  // hop limit
  auto got = r.Take(fe);
  REQUIRE(got.size() == 1);
  auto* ip6 = rte_pktmbuf_mtod_offset(got[0], rte_ipv6_hdr*, 14);
  const uint8_t* na = rte_pktmbuf_mtod_offset(got[0], const uint8_t*, 54);
  CHECK(na[0] == 136);
  CHECK(na[4] == 0xe0);
  CHECK(ip6->hop_limits == 255);
  CHECK(rte_be_to_cpu_16(ip6->payload_len) == 32);
  CHECK(std::memcmp(na + 26, kRouter.addr_bytes, 6) == 0);
  uint8_t want_src[16], want_dst[16];
  inet_pton(AF_INET6, "fd00:1::1", want_src);
  inet_pton(AF_INET6, "fe80::1", want_dst);
  CHECK(std::memcmp(ip6->src_addr, want_src, 16) == 0);
  CHECK(std::memcmp(ip6->dst_addr, want_dst, 16) == 0);
  CHECK(rte_ipv6_udptcp_cksum_verify(ip6, na) == 0);  // a valid ICMPv6 checksum
  rte_pktmbuf_free(got[0]);
  CHECK(pl.counters().ndp_replies == 1);
  CHECK(pl.counters().ndp_ignored == 2);
}

TEST_CASE("verdict cache: a key seen under the same ACL skips rte_acl; a new ACL is asked again",
          "[pipeline][verdict-cache]") {
  // No conntrack: every packet is classified, so each one goes through the
  // cache. The verdict of a key is a pure function of the ACL table; only a
  // table built for a new policy may change it (classifier/verdict_cache.h).
  for (uint32_t entries : {kVerdictCacheEntries, 0u}) {
    INFO("verdict cache entries " << entries);
    Node n;
    n.w.Apply(kMyappFromFrontend);
    auto cell = RcuCell<Snapshot>::Create(1);
    REQUIRE(cell.ok());
    Pipeline pl(**cell, 0, nullptr, nullptr, nullptr, entries);
    auto snap = n.Build();
    Run r{{}, &pl};
    uint16_t fe = n.port["frontend"], te = n.port["test"], my = n.port["myapp"];
    auto forwarded = [&] {
      auto got = r.Take(my);
      for (auto* m : got) rte_pktmbuf_free(m);
      return got.size();
    };
    // Two keys per packet between local endpoints: egress at the source,
    // ingress at the destination.
    const uint64_t keys = entries != 0 ? 2 : 0;
    auto hits = [&] { return pl.counters().acl_cache_hits; };
    r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
    CHECK(forwarded() == 1);
    CHECK(hits() == 0);
    r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
    CHECK(forwarded() == 1);
    CHECK(hits() == keys);
    // Another peer class is another ingress key; a drop is cached like an allow.
    r.Send(*snap, te, TcpFrame("10.1.0.11", "10.1.0.20", 80));
    uint64_t before = hits();
    CHECK(before <= keys + keys / 2);  // its ingress key was not cached
    r.Send(*snap, te, TcpFrame("10.1.0.11", "10.1.0.20", 80));
    CHECK(forwarded() == 0);
    CHECK(pl.dropped(DropReason::kPolicyDenied) == 2);
    CHECK(hits() == before + keys);

    // A policy that denies the cached key: its snapshot has a new ACL, and the
    // first packet is classified by it, not answered from the cache.
    n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lockdown}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "80"}]}]}]
)");
    auto tightened = n.Build();
    REQUIRE(tightened->acl != snap->acl);
    before = hits();
    r.Send(*tightened, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
    CHECK(forwarded() == 0);
    CHECK(pl.counters().drops[fe].by_reason[uint8_t(DropReason::kPolicyDeny)] == 1);
    CHECK(hits() == before);
    r.Send(*tightened, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
    CHECK(pl.counters().drops[fe].by_reason[uint8_t(DropReason::kPolicyDeny)] == 2);
    CHECK(hits() == before + keys);
    // A packet under the old snapshot (a worker that has not moved on yet)
    // still gets the old table's verdict.
    r.Send(*snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));
    CHECK(forwarded() == 1);
  }
}

TEST_CASE("verdict cache: two ways per set, the older replaced; entries belong to one table",
          "[verdict-cache]") {
  classifier::CompiledPolicy empty;
  auto a = classifier::AclTable::Build(empty), b = classifier::AclTable::Build(empty);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->id() != (*b)->id());
  classifier::VerdictCache vc(4);  // two sets of two ways
  auto key = [](uint16_t port) {
    classifier::AclKey k;
    classifier::MakeAclKey(k, 6, 1, 2, port, Direction::kIngress);
    return k;
  };
  // Three keys of one set.
  std::vector<classifier::AclKey> same;
  const uint32_t set = vc.SetOf(key(1));
  for (uint16_t p = 1; same.size() < 3; ++p) {
    if (vc.SetOf(key(p)) == set) same.push_back(key(p));
  }
  auto verdict = [](uint32_t rule) {
    return classifier::PolicyResult{Verdict::kForwarded, classifier::PolicyReason::kNone, 0, rule};
  };
  const auto& ta = **a;
  CHECK(vc.Find(ta, set, same[0]) == nullptr);
  vc.Insert(ta, set, same[0], verdict(10));
  vc.Insert(ta, set, same[1], verdict(11));
  REQUIRE(vc.Find(ta, set, same[0]) != nullptr);
  CHECK(vc.Find(ta, set, same[0])->rule_id == 10);
  REQUIRE(vc.Find(ta, set, same[1]) != nullptr);
  CHECK(vc.Find(ta, set, same[1])->rule_id == 11);
  CHECK(vc.Find(**b, set, same[0]) == nullptr);  // another table's verdicts are not these
  vc.Insert(ta, set, same[2], verdict(12));
  CHECK(vc.Find(ta, set, same[0]) == nullptr);  // the older of the two went
  REQUIRE(vc.Find(ta, set, same[1]) != nullptr);
  CHECK(vc.Find(ta, set, same[1])->rule_id == 11);
  REQUIRE(vc.Find(ta, set, same[2]) != nullptr);
  CHECK(vc.Find(ta, set, same[2])->rule_id == 12);
  CHECK(vc.memory_bytes() == 128);
}
