// The uplink: traffic to and from outside the mesh. The source identity of
// an outside packet is the ipcache's (Cilium resolve_srcid_ipv4: longest
// prefix, unknown is world); CIDR policies select it through CIDR identities.
#include <catch2/catch.hpp>

#include "dataplane/conntrack.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {
constexpr uint16_t kUplink = 5;

Bytes FromOutside(const char* src, const char* dst, uint16_t dport, uint8_t flags = 0x02,
                  uint16_t sport = 50000) {
  return Eth(0x0800, Ipv4(V4(src), V4(dst), 6, Tcp(sport, dport, flags)));
}
}  // namespace

TEST_CASE("outside sources are world, or their CIDR identity", "[uplink][cidr]") {
  Node n;
  n.uplink_port = kUplink;
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ext}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
)");
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, kUplink, FromOutside("203.0.113.7", "10.1.0.20", 80));    // in the CIDR
  r.Send(*snap, kUplink, FromOutside("203.0.113.200", "10.1.0.20", 80));  // in the except
  r.Send(*snap, kUplink, FromOutside("198.51.100.1", "10.1.0.20", 80));   // world
  auto got = r.Take(n.port["myapp"]);
  REQUIRE(got.size() == 1);
  CHECK(Meta(got[0])->src_identity == n.w.IdentityOf("203.0.113.7"));
  CHECK(identity::IsLocalScope(Meta(got[0])->src_identity));
  rte_pktmbuf_free(got[0]);
  CHECK(pl.counters().drops[kUplink].by_reason[133] == 2);
  // The world entity admits unknown outside addresses.
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ext}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEntities: [world]}]
)");
  snap = n.Build();
  r.Send(*snap, kUplink, FromOutside("198.51.100.1", "10.1.0.20", 80));
  got = r.Take(n.port["myapp"]);
  REQUIRE(got.size() == 1);
  CHECK(Meta(got[0])->src_identity == identity::reserved::kWorld);
  rte_pktmbuf_free(got[0]);
}

TEST_CASE("out through the gateway, replies back through conntrack", "[uplink][conntrack]") {
  Node n;
  n.uplink_port = kUplink;
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-ingress}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{}]
)");
  auto cell = RcuCell<Snapshot>::Create(1);
  auto ct = Conntrack::Create(256, (*cell)->qsbr());
  Pipeline pl(**cell, 0, ct->get());
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "8.8.8.8", 443));
  auto got = r.Take(kUplink);
  REQUIRE(got.size() == 1);
  auto* eth = rte_pktmbuf_mtod(got[0], rte_ether_hdr*);
  rte_ether_addr gw = Mac(0xe1);
  CHECK(rte_is_same_ether_addr(&eth->dst_addr, &gw));
  CHECK(rte_pktmbuf_mtod_offset(got[0], rte_ipv4_hdr*, 14)->time_to_live == 63);
  rte_pktmbuf_free(got[0]);
  r.Send(*snap, kUplink, FromOutside("8.8.8.8", "10.1.0.10", 40000, 0x12, 443));  // the reply
  got = r.Take(n.port["frontend"]);
  CHECK(got.size() == 1);
  for (auto* m : got) rte_pktmbuf_free(m);
  r.Send(*snap, kUplink, FromOutside("8.8.8.8", "10.1.0.10", 22));  // not a reply: denied
  CHECK(r.Take(n.port["frontend"]).empty());
  CHECK(pl.counters().drops[kUplink].by_reason[133] == 1);
}

TEST_CASE("the uplink refuses mesh sources and transit", "[uplink][drops]") {
  Node n;
  n.uplink_port = kUplink;
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  Run r{{}, &pl};
  r.Send(*snap, kUplink, FromOutside("10.1.0.10", "10.1.0.20", 80));   // a local endpoint's address
  r.Send(*snap, kUplink, FromOutside("198.51.100.1", "8.8.8.8", 80));  // transit
  CHECK(r.Take(n.port["myapp"]).empty());
  CHECK(r.Take(kUplink).empty());
  CHECK(pl.counters().drops[kUplink].by_reason[132] == 1);
  CHECK(pl.counters().drops[kUplink].by_reason[152] == 1);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}
