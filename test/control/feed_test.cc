// The mesh feed: framing (round trips in every split, hostile frames) and the
// agent's validation of what it is fed (Cilium's rules for remote data,
// pkg/ipcache/kvstore.go; resync with sync markers), on a real Instance.
#include <catch2/catch.hpp>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include <random>

#include "control/agent.h"
#include "control/feed.h"
#include "dataplane/packet.h"
#include "identity/numeric.h"
#include "lb/maglev.h"

using namespace meshgate;
using namespace meshgate::control;
namespace v1 = meshgate::mesh::v1;

namespace {

v1::Update Identity(uint32_t id, std::vector<std::string> labels, uint64_t rev = 0) {
  v1::Update u;
  u.set_revision(rev);
  auto* x = u.mutable_identity_upsert();
  x->set_id(id);
  for (auto& l : labels) x->add_labels(l);
  return u;
}
v1::Update Ipcache(const std::string& prefix, uint32_t id, const std::string& cluster) {
  v1::Update u;
  auto* x = u.mutable_ipcache_upsert();
  x->set_prefix(prefix);
  x->set_identity(id);
  x->set_tunnel_endpoint("100.64.0.2");
  x->set_cluster(cluster);
  return u;
}
v1::Update Hello(uint32_t cluster_id) {
  v1::Update u;
  u.mutable_hello()->set_protocol_version(kProtocolVersion);
  u.mutable_hello()->set_cluster_id(cluster_id);
  return u;
}
v1::Update Manifest(const std::string& yaml) {
  v1::Update u;
  u.mutable_manifest_apply()->set_yaml(yaml);
  u.mutable_manifest_apply()->set_file("feed.yaml");
  return u;
}

}  // namespace

TEST_CASE("frames round-trip whatever way the bytes are split", "[feed]") {
  std::vector<v1::Update> in;
  for (uint32_t i = 0; i < 50; ++i) {
    in.push_back(Identity(0x10000 + i, {"k8s:app=a" + std::to_string(i)}, i + 1));
  }
  in.push_back(Manifest(std::string(300, 'x')));  // a 2-byte varint length
  std::string bytes;
  for (const auto& u : in) AppendFrame(u, bytes);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    FrameDecoder d;
    std::vector<v1::Update> out;
    size_t at = 0;
    while (at < bytes.size()) {
      size_t n = std::min(bytes.size() - at, size_t(rng() % 40 + (trial == 0 ? 0 : 1)));
      if (trial == 0) n = 1;  // byte by byte
      d.Feed(std::string_view(bytes).substr(at, n));
      at += n;
      v1::Update u;
      for (;;) {
        auto r = d.Next(u);
        REQUIRE(r.ok());
        if (!*r) break;
        out.push_back(u);
      }
    }
    REQUIRE(out.size() == in.size());
    for (size_t i = 0; i < in.size(); ++i) CHECK(out[i].SerializeAsString() == in[i].SerializeAsString());
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("hostile frames are refused and the stream stays broken", "[feed]") {
  v1::Update u;
  SECTION("a frame over the limit is refused before it is read") {
    FrameDecoder d(1024);
    d.Feed(std::string("\x80\x80\x04", 3));  // 65536 bytes announced
    auto r = d.Next(u);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK(std::string(r.status().message()).find("exceeds the limit of 1024") != std::string::npos);
    d.Feed(EncodeFrame(Hello(0)));
    CHECK_FALSE(d.Next(u).ok());  // sticky
  }
  SECTION("a length prefix that never ends") {
    FrameDecoder d;
    d.Feed(std::string(8, '\xff'));
    CHECK_FALSE(d.Next(u).ok());
  }
  SECTION("bytes that are not an Update") {
    FrameDecoder d;
    d.Feed(std::string("\x04\xff\xff\xff\xff", 5));
    auto r = d.Next(u);
    REQUIRE_FALSE(r.ok());
    CHECK(std::string(r.status().message()).find("not a meshgate.mesh.v1.Update") != std::string::npos);
  }
  SECTION("a truncated frame waits for the rest") {
    std::string f = EncodeFrame(Identity(0x10001, {"k8s:app=a"}));
    FrameDecoder d;
    d.Feed(f.substr(0, f.size() - 1));
    auto r = d.Next(u);
    REQUIRE(r.ok());
    CHECK_FALSE(*r);
    d.Feed(f.substr(f.size() - 1));
    r = d.Next(u);
    REQUIRE(r.ok());
    CHECK(*r);
    CHECK(u.identity_upsert().id() == 0x10001);
  }
  SECTION("random garbage never crashes the decoder") {
    std::mt19937 rng(11);
    for (int i = 0; i < 2000; ++i) {
      FrameDecoder d(4096);
      std::string g(rng() % 64, '\0');
      for (auto& c : g) c = char(rng());
      d.Feed(g);
      for (int k = 0; k < 10; ++k) {
        auto r = d.Next(u);
        if (!r.ok() || !*r) break;
      }
    }
  }
}

namespace {

// One agent over a real instance with two net_ring endpoint ports.
struct Fixture {
  std::vector<rte_ring*> rings;
  std::unique_ptr<dataplane::Instance> inst;
  std::unique_ptr<Agent> agent;
  explicit Fixture(const std::string& name) {
    REQUIRE(dataplane::RegisterPacketMeta().ok());
    dataplane::InstanceConfig ic;
    ic.name = name;
    ic.ipcache = {1 << 10, 64};
    ic.conntrack_size = 1024;
    ic.mbufs = 1023;
    for (int p = 0; p < 2; ++p) {
      std::string n = name + "p" + std::to_string(p);
      rte_ring* rx = rte_ring_create((n + "r").c_str(), 256, SOCKET_ID_ANY, 0);
      rte_ring* tx = rte_ring_create((n + "t").c_str(), 256, SOCKET_ID_ANY, 0);
      REQUIRE((rx && tx));
      rings.push_back(rx);
      rings.push_back(tx);
      REQUIRE(rte_eth_from_rings(n.c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY) >= 0);
      ic.ports.push_back({"net_ring_" + n, dataplane::PortRole::kEndpoint});
    }
    auto i = dataplane::Instance::Create(ic);
    REQUIRE(i.ok());
    inst = std::move(*i);
    AgentConfig ac;
    ac.cluster = "cluster1";
    ac.cluster_id = 1;
    agent = std::make_unique<Agent>(ac, *inst);
  }
  ~Fixture() {
    agent.reset();
    inst.reset();
  }
  uint64_t Generation() { return inst->snapshots().current_for_writer()->generation; }
};

// myapp (identity 0x10001, 10.1.0.20) attached on port 0.
v1::Update MyappAttach() {
  v1::Update ep;
  auto* x = ep.mutable_endpoint_attach();
  x->set_name("myapp");
  x->set_namespace_("default");
  x->set_identity(0x10001);
  x->add_addresses("10.1.0.20");
  x->set_port(0);
  x->set_mac("02:00:00:00:00:01");
  return ep;
}

}  // namespace

TEST_CASE("the agent refuses what Cilium refuses from a remote cluster", "[agent]") {
  Fixture f("agv");
  // Cluster 2 speaks: its identities are 0x20000..0x2ffff (ClusterLayout).
  REQUIRE(f.agent->Apply(Hello(2)).ok());
  CHECK(f.agent->Apply(Identity(0x20001, {"k8s:app=a", "k8s:io.cilium.k8s.policy.cluster=cluster2"})).ok());
  auto st = f.agent->Apply(Identity(0x10001, {"k8s:app=a"}));
  CHECK(st.code() == absl::StatusCode::kPermissionDenied);
  CHECK(f.agent->identities().Find(0x10001) == nullptr);
  CHECK_FALSE(f.agent->Apply(Identity(identity::reserved::kWorld, {"reserved:world"})).ok());
  CHECK_FALSE(f.agent->Apply(Identity(0x20002, {})).ok());
  CHECK_FALSE(f.agent->Apply(Ipcache("10.1.0.9/32", 0x10001, "cluster2")).ok());
  CHECK_FALSE(f.agent->Apply(Ipcache("10.1.0.300/32", 0x20001, "cluster2")).ok());
  // A remote node claiming the host identity is a remote node here.
  REQUIRE(f.agent->Apply(Ipcache("192.168.2.1/32", identity::reserved::kHost, "cluster2")).ok());
  REQUIRE(f.agent->Apply(Ipcache("10.2.0.9/32", 0x20001, "cluster2")).ok());
  auto e = f.agent->ipcache().Lookup(*identity::IpAddr::Parse("192.168.2.1"));
  REQUIRE(e.entry != nullptr);
  CHECK(e.id == identity::reserved::kRemoteNode);
  CHECK(f.agent->ipcache().Lookup(*identity::IpAddr::Parse("10.2.0.9")).id == 0x20001);
  // Unknown message types and stale revisions.
  v1::Update empty;
  CHECK(f.agent->Apply(empty).code() == absl::StatusCode::kInvalidArgument);
  v1::Update newer = Identity(0x20004, {"k8s:app=b"}, 10);
  REQUIRE(f.agent->Apply(newer).ok());
  CHECK_FALSE(f.agent->Apply(Identity(0x20005, {"k8s:app=c"}, 9)).ok());
  CHECK(f.agent->Counts().revision == 10);
  // Wrong protocol version.
  v1::Update h = Hello(0);
  h.mutable_hello()->set_protocol_version(99);
  CHECK(f.agent->Apply(h).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a refused manifest leaves the policy in force", "[agent]") {
  Fixture f("agm");
  REQUIRE(f.agent->Apply(Hello(0)).ok());
  REQUIRE(f.agent->Apply(Identity(0x10001, {"k8s:app=myapp", "k8s:io.cilium.k8s.policy.cluster=cluster1"})).ok());
  v1::Update ep = MyappAttach();
  auto* x = ep.mutable_endpoint_attach();
  REQUIRE(f.agent->Apply(ep).ok());
  REQUIRE(f.agent->Apply(Manifest(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]
)")).ok());
  REQUIRE(f.agent->Commit().ok());
  uint64_t g = f.Generation();
  CHECK(f.agent->Counts().policies == 1);
  auto st = f.agent->Apply(Manifest(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{toPorts: [{ports: [{port: "80"}], rules: {http: [{method: GET}]}}]}]
)"));
  REQUIRE_FALSE(st.ok());
  CHECK(std::string(st.message()).find("feed.yaml:6") != std::string::npos);
  CHECK(f.agent->policies().size() == 1);
  CHECK(f.agent->policies()[0].rules[0].ingress.size() == 1);
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g);  // nothing changed, nothing published
  // An endpoint refused: unknown identity, port taken, bad MAC.
  x->set_name("other");
  CHECK(f.agent->Apply(ep).code() == absl::StatusCode::kAlreadyExists);
  x->set_port(1);
  x->set_identity(0x10009);
  CHECK(f.agent->Apply(ep).code() == absl::StatusCode::kFailedPrecondition);
  x->set_identity(0x10001);
  x->set_mac("zz");
  CHECK_FALSE(f.agent->Apply(ep).ok());
  x->set_port(7);
  CHECK_FALSE(f.agent->Apply(ep).ok());
  CHECK(f.agent->Counts().endpoints == 1);
}

TEST_CASE("a resync removes what is no longer sent, keeps what is", "[agent]") {
  Fixture f("ags");
  REQUIRE(f.agent->Apply(Hello(0)).ok());
  v1::Update start, done;
  start.mutable_sync_start();
  done.mutable_sync_done();
  CHECK_FALSE(f.agent->Apply(done).ok());  // done without start
  REQUIRE(f.agent->Apply(start).ok());
  for (uint32_t i = 1; i <= 3; ++i) {
    REQUIRE(f.agent->Apply(Identity(0x20000 + i, {"k8s:app=a" + std::to_string(i)})).ok());
    REQUIRE(f.agent->Apply(Ipcache("10.2.0." + std::to_string(i) + "/32", 0x20000 + i, "c2")).ok());
  }
  REQUIRE(f.agent->Apply(done).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.agent->Counts().synced);
  CHECK(f.agent->ipcache().entries().size() == 3);
  // The feed reconnects; until sync-done the old state stays in force.
  REQUIRE(f.agent->Apply(start).ok());
  REQUIRE(f.agent->Apply(Identity(0x20001, {"k8s:app=a1"})).ok());
  REQUIRE(f.agent->Apply(Ipcache("10.2.0.1/32", 0x20001, "c2")).ok());
  REQUIRE(f.agent->Apply(Identity(0x20009, {"k8s:app=new"})).ok());
  REQUIRE(f.agent->Apply(Ipcache("10.2.0.9/32", 0x20009, "c2")).ok());
  CHECK(f.agent->ipcache().entries().size() == 4);
  CHECK(f.agent->identities().Find(0x20003) != nullptr);
  REQUIRE(f.agent->Apply(done).ok());
  CHECK(f.agent->ipcache().entries().size() == 2);
  CHECK(f.agent->identities().Find(0x20002) == nullptr);
  CHECK(f.agent->identities().Find(0x20003) == nullptr);
  CHECK(f.agent->identities().Find(0x20009) != nullptr);
  REQUIRE(f.agent->Commit().ok());
  // The published ipcache table followed.
  CHECK(f.inst->ipcache().Prefixes().size() == 2);
}

TEST_CASE("lb-algorithm maglev: Maglev with Cilium's seeds for north-south frontends, random for cluster IPs",
          "[agent][service][cilium:pkg/loadbalancer/reconciler useMaglev]") {
  Fixture f("agl");
  REQUIRE(f.agent->Apply(Hello(0)).ok());
  REQUIRE(f.agent->Apply(Identity(0x10001, {"k8s:app=myapp", "k8s:io.cilium.k8s.policy.cluster=cluster1"})).ok());
  REQUIRE(f.agent->Apply(MyappAttach()).ok());
  REQUIRE(f.agent->Apply(Manifest(R"(apiVersion: v1
kind: Service
metadata:
  name: myapp
  annotations: {service.cilium.io/lb-algorithm: maglev}
spec:
  clusterIP: 10.96.0.80
  externalIPs: [192.0.2.80]
  selector: {app: myapp}
  ports: [{port: 80, targetPort: 8080}]
)")).ok());
  REQUIRE(f.agent->Commit().ok());
  const auto* snap = f.inst->snapshots().current_for_writer();
  REQUIRE(snap != nullptr);
  REQUIRE(snap->services != nullptr);
  const auto& t = *snap->services;
  int32_t cip = t.Lookup(dataplane::MakeServiceKey(*identity::IpAddr::Parse("10.96.0.80"), 80, 6));
  int32_t eip = t.Lookup(dataplane::MakeServiceKey(*identity::IpAddr::Parse("192.0.2.80"), 80, 6));
  REQUIRE(cip >= 0);
  REQUIRE(eip >= 0);
  CHECK_FALSE(t.UsesMaglev(cip));  // east-west: random, as Cilium
  CHECK(t.UsesMaglev(eip));
  CHECK(t.NumBackends(eip) == 1);
  CHECK(t.Backend(t.First(eip)).port == 8080);
  auto seeds = *lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed);
  const uint8_t client[4] = {198, 51, 100, 7};
  CHECK(t.FlowHash(eip, 4, client, 40000, 80, 6) ==
        dataplane::LbFlowHash(4, client, 40000, 80, 6, seeds.jhash_v4));
}

TEST_CASE("a snapshot whose rules compile the same reuses the ACL; a policy change builds one",
          "[agent][acl-reuse]") {
  Fixture f("agr");
  REQUIRE(f.agent->Apply(Hello(0)).ok());
  const std::string ns = "k8s:io.kubernetes.pod.namespace=default";
  REQUIRE(f.agent->Apply(Identity(0x10001, {"k8s:app=myapp", ns, "k8s:io.cilium.k8s.policy.cluster=cluster1"})).ok());
  REQUIRE(f.agent->Apply(Identity(0x10002, {"k8s:app=frontend", ns, "k8s:io.cilium.k8s.policy.cluster=cluster1"})).ok());
  REQUIRE(f.agent->Apply(MyappAttach()).ok());
  const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "80"}]}]}]
)";
  REQUIRE(f.agent->Apply(Manifest(kPolicy)).ok());
  REQUIRE(f.agent->Commit().ok());
  const classifier::AclTable* first = f.agent->acl();
  REQUIRE(first != nullptr);
  REQUIRE(first->num_rules() > 0);
  uint64_t g = f.Generation();
  // A service: a new snapshot (services are part of it), the same rules.
  REQUIRE(f.agent->Apply(Manifest(R"(apiVersion: v1
kind: Service
metadata: {name: myapp}
spec:
  clusterIP: 10.96.0.80
  selector: {app: myapp}
  ports: [{port: 80, targetPort: 8080}]
)")).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g + 1);
  CHECK(f.agent->acl() == first);
  CHECK(f.inst->snapshots().current_for_writer()->acl.get() == first);
  // A second endpoint of the same identity (same subject class): same rules.
  v1::Update ep = MyappAttach();
  ep.mutable_endpoint_attach()->set_name("myapp-2");
  ep.mutable_endpoint_attach()->set_port(1);
  ep.mutable_endpoint_attach()->clear_addresses();
  ep.mutable_endpoint_attach()->add_addresses("10.1.0.21");
  ep.mutable_endpoint_attach()->set_mac("02:00:00:00:00:02");
  REQUIRE(f.agent->Apply(ep).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g + 2);
  CHECK(f.agent->acl() == first);
  // The policy's port changes: the rules differ, a new ACL is built, and
  // its verdicts are the new policy's.
  std::string changed = kPolicy;
  changed.replace(changed.find("\"80\""), 4, "\"8080\"");
  REQUIRE(f.agent->Apply(Manifest(changed)).ok());
  REQUIRE(f.agent->Commit().ok());
  const classifier::AclTable* second = f.agent->acl();
  CHECK(second != first);
  REQUIRE(f.agent->compiled() != nullptr);
  CHECK(second->SameRules(*f.agent->compiled()));
  bool has_8080 = false;
  for (const auto& r : f.agent->compiled()->rules) has_8080 |= r.port_lo == 8080;
  CHECK(has_8080);
  // One context (a few rules, one partition): nothing to consolidate, no
  // new snapshot (the daemon test covers a consolidation past 1,024 rules).
  CHECK_FALSE(f.agent->NeedsConsolidation());
  uint64_t g3 = f.Generation();
  REQUIRE(f.agent->Consolidate().ok());
  CHECK(f.Generation() == g3);
}

TEST_CASE("identities joining existing classes and plain ipcache entries apply in place",
          "[agent][in-place]") {
  // architecture.md invariant 1: such updates go into the published
  // snapshot's lock-free tables; no compile, no snapshot, no ACL rebuild.
  static int run = 0;  // each SECTION runs the case again: fresh ring names
  Fixture f("agi" + std::to_string(run++));
  REQUIRE(f.agent->Apply(Hello(0)).ok());
  const std::string ns = "k8s:io.kubernetes.pod.namespace=default";
  const std::string c1 = "k8s:io.cilium.k8s.policy.cluster=cluster1";
  REQUIRE(f.agent->Apply(Identity(0x10001, {"k8s:app=myapp", ns, c1})).ok());
  REQUIRE(f.agent->Apply(Identity(0x10002, {"k8s:app=frontend", ns, c1})).ok());
  REQUIRE(f.agent->Apply(Identity(0x10004, {"k8s:env=prod", ns, c1})).ok());
  REQUIRE(f.agent->Apply(MyappAttach()).ok());
  REQUIRE(f.agent->Apply(Manifest(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - {fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}
  - {fromEndpoints: [{matchLabels: {env: prod}}], toPorts: [{ports: [{port: "443", protocol: TCP}]}]}
)")).ok());
  REQUIRE(f.agent->Commit().ok());
  const uint64_t g = f.Generation();
  const classifier::AclTable* acl = f.agent->acl();
  // The verdict the published snapshot gives `id` -> myapp on TCP `port`.
  auto verdict = [&](uint32_t id, uint16_t port) {
    const dataplane::Snapshot* s = f.inst->snapshots().current_for_writer();
    uint16_t e = s->endpoint_of_port[f.inst->port_id(0)];
    REQUIRE(e != dataplane::kNoEndpoint);
    classifier::AclKey k;
    classifier::MakeAclKey(k, 6, s->endpoints[e].subject_class, s->classes->Lookup(id), port,
                           classifier::Direction::kIngress);
    const classifier::AclKey* kp = &k;
    classifier::PolicyResult r;
    s->acl->Classify(&kp, 1, &r);
    return r.verdict;
  };
  auto route_identity = [&](const char* ip) {
    uint32_t slot = f.inst->ipcache().Lookup4(identity::IpAddr::Parse(ip)->v4_host_order());
    return slot == dataplane::kOutsideRoute ? 0u : f.inst->ipcache().At(slot).identity;
  };
  using classifier::Verdict;
  CHECK(verdict(0x10003, 80) == Verdict::kDropped);  // not known yet

  // A second frontend and its address: in place.
  REQUIRE(f.agent->Apply(Identity(0x10003, {"k8s:app=frontend", "k8s:pod-template-hash=x", ns, c1})).ok());
  REQUIRE(f.agent->Apply(Ipcache("10.1.0.31/32", 0x10003, "cluster1")).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g);
  CHECK(f.agent->Counts().in_place == 2);
  CHECK(f.agent->acl() == acl);
  CHECK(f.inst->snapshots().current_for_writer()->classes->Lookup(0x10003) ==
        f.inst->snapshots().current_for_writer()->classes->Lookup(0x10002));
  CHECK(verdict(0x10003, 80) == Verdict::kForwarded);
  CHECK(verdict(0x10003, 443) == Verdict::kDropped);
  CHECK(route_identity("10.1.0.31") == 0x10003);

  // Relabelled to env=prod (an existing class): in place, the other port.
  REQUIRE(f.agent->Apply(Identity(0x10003, {"k8s:env=prod", "k8s:pod-template-hash=x", ns, c1})).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g);
  CHECK(verdict(0x10003, 80) == Verdict::kDropped);
  CHECK(verdict(0x10003, 443) == Verdict::kForwarded);

  // Gone: class 0 (default deny here), and its route with it.
  v1::Update del;
  del.mutable_identity_delete()->set_id(0x10003);
  REQUIRE(f.agent->Apply(del).ok());
  v1::Update delp;
  delp.mutable_ipcache_delete()->set_prefix("10.1.0.31/32");
  REQUIRE(f.agent->Apply(delp).ok());
  REQUIRE(f.agent->Commit().ok());
  CHECK(f.Generation() == g);
  CHECK(f.agent->Counts().in_place == 5);
  CHECK(verdict(0x10003, 443) == Verdict::kDropped);
  CHECK(route_identity("10.1.0.31") == 0);

  SECTION("labels matching a new set of selectors: a compile and a snapshot") {
    REQUIRE(f.agent->Apply(Identity(0x10005, {"k8s:app=frontend", "k8s:env=prod", ns, c1})).ok());
    REQUIRE(f.agent->Commit().ok());
    CHECK(f.Generation() == g + 1);
    CHECK(verdict(0x10005, 80) == Verdict::kForwarded);
    CHECK(verdict(0x10005, 443) == Verdict::kForwarded);
  }
  SECTION("the local endpoint's own identity relabelled: a compile and a snapshot") {
    REQUIRE(f.agent->Apply(Identity(0x10001, {"k8s:app=other", ns, c1})).ok());
    REQUIRE(f.agent->Commit().ok());
    CHECK(f.Generation() == g + 1);
    CHECK(verdict(0x10004, 80) == Verdict::kForwarded);  // myapp's policy no longer selects it
  }
  SECTION("an ipcache entry with named ports (egress rules use them): a compile") {
    v1::Update u = Ipcache("10.1.0.32/32", 0x10002, "cluster1");
    auto* np = u.mutable_ipcache_upsert()->add_named_ports();
    np->set_name("http");
    np->set_port(8080);
    np->set_protocol("TCP");
    REQUIRE(f.agent->Apply(u).ok());
    REQUIRE(f.agent->Commit().ok());
    CHECK(f.Generation() == g + 1);
    CHECK(route_identity("10.1.0.32") == 0x10002);
  }
  SECTION("a full compile afterwards gives the same verdicts as the in-place tables") {
    REQUIRE(f.agent->Apply(Identity(0x10006, {"k8s:app=frontend", "k8s:pod-template-hash=y", ns, c1})).ok());
    REQUIRE(f.agent->Commit().ok());
    CHECK(f.Generation() == g);
    std::vector<Verdict> before;
    for (uint32_t id : {0x10002u, 0x10003u, 0x10004u, 0x10006u}) {
      for (uint16_t port : {80, 443}) before.push_back(verdict(id, port));
    }
    REQUIRE(f.agent->Consolidate().ok());  // nothing to merge: no snapshot
    REQUIRE(f.agent->Apply(MyappAttach()).ok());  // an endpoint update: a full commit
    REQUIRE(f.agent->Commit().ok());
    CHECK(f.Generation() == g + 1);
    size_t i = 0;
    for (uint32_t id : {0x10002u, 0x10003u, 0x10004u, 0x10006u}) {
      for (uint16_t port : {80, 443}) CHECK(verdict(id, port) == before[i++]);
    }
  }
}
