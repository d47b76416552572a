// The compiler's output pinned by golden tests; the rte_acl table checked
// against the model on random policies; bursts; incremental classes.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "test/classifier/world.h"

using namespace meshgate;
using namespace meshgate::test;
using classifier::AclKey;
using classifier::AclTable;

TEST_CASE("golden: the seed's my-policy compiles to one rule per class range",
          "[compile][golden]") {
  World w;
  w.Add("frontend", {{"app", "frontend"}});
  w.Add("test", {{"app", "test"}});
  w.Add("myapp", {{"app", "myapp"}});
  w.Add("frontend", {{"app", "frontend"}}, "default", "cluster2");
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
  - fromEndpoints: [{matchLabels: {app: test}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}, {port: "53", protocol: ANY}]}]
  egressDeny:
  - toCIDR: [192.0.2.0/24]
)");
  const auto& cp = w.Compiled();
  std::vector<std::string> got;
  for (const auto& r : cp.rules) got.push_back(r.ToString());
  // Peer selectors are interned in rule-id order (ingressDeny, ingress,
  // egressDeny, egress), then allow-localhost's host selector; classes sort
  // by signature: {frontend}=1, {test}=2, {cidr 192.0.2.0/24}=3, {host}=4.
  // Subject classes: 0 = unselected, 1 = myapp.
  std::vector<std::string> want = {
      "allow ingress subj=1 peer=1 proto=* port=* rule=1",
      "allow ingress subj=1 peer=2 proto=6 port=53 rule=2",
      "allow ingress subj=1 peer=2 proto=6 port=8080 rule=2",
      "allow ingress subj=1 peer=2 proto=17 port=53 rule=2",
      "allow ingress subj=1 peer=2 proto=132 port=53 rule=2",
      "deny egress subj=1 peer=3 proto=* port=* rule=3",
      "allow ingress subj=* peer=4 proto=* port=* rule=4",
  };
  CHECK(got == want);
  CHECK(cp.num_subject_classes == 2);
  CHECK(cp.enforced == std::vector<uint8_t>{0, 3});
  CHECK(cp.origins.size() == 4);
  CHECK(cp.origins[2].section == "egressDeny");
  // Both frontends (two clusters, two identities) share one class.
  CHECK(cp.PeerClass(w.Get("cluster1/frontend").id) == cp.PeerClass(w.Get("cluster2/frontend").id));
}

TEST_CASE("a new identity joins an existing class without recompiling",
          "[compile][classes][architecture.md invariant 1]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("fe", {{"app", "frontend"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]
)");
  const auto& cp = w.Compiled();
  identity::EndpointSpec ep;
  ep.labels = {{"app", "frontend"}, {"version", "v2"}};
  ep.cluster = "cluster2";
  auto cls = cp.ClassifyIdentity(identity::IdentityLabels(ep));
  REQUIRE(cls.has_value());
  CHECK(*cls == cp.PeerClass(w.Get("fe").id));
  ep.labels = {{"app", "other"}};
  CHECK(cp.ClassifyIdentity(identity::IdentityLabels(ep)) == 0u);
  // The fast table takes the new identity while the ACL stays as built.
  auto table = classifier::IdentityClassTable::Build(cp);
  REQUIRE(table.ok());
  CHECK((*table)->Lookup(0x20000 | 77) == 0);
  REQUIRE((*table)->Set(0x20000 | 77, *cls).ok());
  CHECK((*table)->Lookup(0x20000 | 77) == *cls);
  (*table)->Erase(0x20000 | 77);
  CHECK((*table)->Lookup(0x20000 | 77) == 0);
}

TEST_CASE("bursts: one classify call decides many packets, chunked past 64",
          "[compile][acl][burst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("fe", {{"app", "frontend"}});
  w.Add("other", {{"app", "other"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "80"}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: other}}], toPorts: [{ports: [{port: "22"}]}]}]
)");
  const auto& cp = w.Compiled();
  auto table = AclTable::Build(cp);
  REQUIRE(table.ok());
  uint32_t srv = cp.subject_class_of_endpoint[2];  // eps ordered by name: fe, other, srv
  uint32_t fe = cp.PeerClass(w.Get("fe").id), other = cp.PeerClass(w.Get("other").id);
  constexpr uint32_t kN = 200;
  std::vector<AclKey> keys(kN);
  std::vector<const AclKey*> kp(kN);
  for (uint32_t i = 0; i < kN; ++i) {
    uint16_t port = i % 3 == 0 ? 80 : i % 3 == 1 ? 22 : 443;
    classifier::MakeAclKey(keys[i], 6, srv, i % 2 ? fe : other, port, Direction::kIngress);
    kp[i] = &keys[i];
  }
  std::vector<PolicyResult> res(kN);
  (*table)->Classify(kp.data(), kN, res.data());
  for (uint32_t i = 0; i < kN; ++i) {
    uint16_t port = i % 3 == 0 ? 80 : i % 3 == 1 ? 22 : 443;
    bool is_fe = i % 2;
    INFO("packet " << i);
    if (is_fe && port == 80) CHECK(Allowed(res[i]));
    else if (!is_fe && port == 22) CHECK(DeniedByDenyRule(res[i]));
    else CHECK(Denied(res[i]));
  }
  CHECK((*table)->num_rules() == cp.rules.size());
  CHECK((*table)->memory_bytes() > 0);
}

TEST_CASE("differential: random policies, the rte_acl table agrees with the model",
          "[compile][acl][differential]") {
  std::mt19937 rng(20261127);
  const std::vector<std::string> apps = {"a", "b", "c", "d"};
  const std::vector<std::string> nss = {"default", "prod"};
  auto pick = [&](const auto& v) { return v[rng() % v.size()]; };
  // Five worlds of five rounds each: every round applies new random
  // policies (replacing p0..p3), every other one more endpoint, to the same world, so
  // each compile starts from the previous one (reused and extended peer
  // classes, stable subject classes, ACL partitions built on the previous
  // table; test/classifier/world.h checks a table forced into partitions
  // too).
  std::unique_ptr<World> world;
  for (int round = 0; round < 25; ++round) {
    if (round % 5 == 0) {
      world = std::make_unique<World>();
      for (int i = 0; i < 8; ++i) {
        world->Add("ep" + std::to_string(i), {{"app", pick(apps)}, {"tier", std::to_string(i % 3)}},
                   pick(nss), i < 6 ? "" : "cluster2", {{"web", uint16_t(8000 + i % 2), 6}});
      }
    } else if (round % 2 == 1) {  // even rounds: the same identities (peer classes extended)
      world->Add("late" + std::to_string(round), {{"app", pick(apps)}, {"tier", std::to_string(round % 3)}},
                 pick(nss), round % 2 ? "" : "cluster2", {{"web", uint16_t(8000 + round % 2), 6}});
    }
    World& w = *world;
    std::string y;
    int npol = 1 + int(rng() % 4);
    for (int p = 0; p < npol; ++p) {
      y += "---\napiVersion: cilium.io/v2\nkind: " +
           std::string(rng() % 3 == 0 ? "CiliumClusterwideNetworkPolicy" : "CiliumNetworkPolicy") +
           "\nmetadata: {name: p" + std::to_string(p) + ", namespace: " + pick(nss) + "}\nspec:\n";
      y += "  endpointSelector: {matchLabels: {app: " + pick(apps) + "}}\n";
      for (const char* sec : {"ingress", "ingressDeny", "egress", "egressDeny"}) {
        if (rng() % 3 != 0) continue;
        bool in = sec[0] == 'i';
        y += std::string("  ") + sec + ":\n";
        int n = int(rng() % 3);
        if (n == 0) y += "  - {}\n";
        for (int e = 0; e < n; ++e) {
          y += "  - ";
          switch (rng() % 5) {
            case 0: y += std::string(in ? "fromEndpoints" : "toEndpoints") + ": [{matchLabels: {app: " + pick(apps) + "}}]\n    "; break;
            case 1: y += std::string(in ? "fromEndpoints" : "toEndpoints") + ": [{matchExpressions: [{key: tier, operator: NotIn, values: ['1']}]}]\n    "; break;
            case 2: y += std::string(in ? "fromEntities" : "toEntities") + ": [" + pick(std::vector<std::string>{"world", "cluster", "all", "remote-node"}) + "]\n    "; break;
            case 3: y += std::string(in ? "fromCIDR" : "toCIDR") + ": [10.0.0.0/8]\n    "; break;
            default: break;  // L4 only
          }
          switch (rng() % 4) {
            case 0: y += "toPorts: [{ports: [{port: '80', protocol: TCP}, {port: '8000', endPort: 8001}]}]\n"; break;
            case 1: y += "toPorts: [{ports: [{port: web, protocol: TCP}]}]\n"; break;
            case 2: y += "icmps: [{fields: [{type: 8}]}]\n"; break;
            default: y += "toPorts: [{ports: [{port: '53', protocol: ANY}]}]\n"; break;
          }
        }
      }
      if (y.back() != '\n' || y.find("ingress") == std::string::npos) {}
    }
    auto diags = w.TryApply(y);  // some random rules have no section at all: fine
    classifier::CompileOptions o;
    o.audit = rng() % 5 == 0;
    o.enforcement = rng() % 6 == 0 ? classifier::EnforcementMode::kAlways
                                   : classifier::EnforcementMode::kDefault;
    w.SetOptions(o);
    std::vector<NumericIdentity> peers = {identity::reserved::kWorld, identity::reserved::kHost,
                                          identity::reserved::kRemoteNode,
                                          w.IdentityOf("10.2.3.4")};
    for (const auto& [n, e] : w.eps) peers.push_back(e.id);
    for (const auto& [n, e] : w.eps) {
      if (e.spec.cluster != w.cluster) continue;
      for (auto peer : peers) {
        for (auto [proto, port] : std::vector<std::pair<uint8_t, uint16_t>>{
                 {6, 80}, {6, 8000}, {6, 8001}, {17, 53}, {132, 53}, {1, 8}, {6, 9999}}) {
          w.Check(Direction::kIngress, n, peer, proto, port);  // CHECKs agreement
          w.Check(Direction::kEgress, n, peer, proto, port);
        }
      }
    }
  }
}

namespace {

// One CiliumNetworkPolicy per service: `entries` ingress entries, entry j
// admitting app=client-(j % clients) on TCP port base + j.
std::string ServicePolicy(int svc, int entries, int clients, int base, const std::string& name = "") {
  std::string y = "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " +
                  (name.empty() ? "svc-" + std::to_string(svc) : name) +
                  "}\nspec:\n  endpointSelector: {matchLabels: {app: svc-" +
                  std::to_string(svc) + "}}\n  ingress:\n";
  for (int j = 0; j < entries; ++j) {
    y += "  - fromEndpoints: [{matchLabels: {app: client-" + std::to_string(j % clients) +
         "}}]\n    toPorts: [{ports: [{port: '" + std::to_string(base + j) +
         "', protocol: TCP}]}]\n";
  }
  return y;
}

}  // namespace

TEST_CASE("partitions: a policy change rebuilds only the partitions of the subjects it selects",
          "[compile][acl][partitions]") {
  // 16 services x 72 entries = 1,152 rules: past kPartitionMinRules, so the
  // deployed table is partitioned by subject class.
  constexpr int kSvcs = 16, kEntries = 72, kClients = 8;
  World w;
  for (int s = 0; s < kSvcs; ++s) w.Add("svc-" + std::to_string(s), {{"app", "svc-" + std::to_string(s)}});
  for (int c = 0; c < kClients; ++c) {
    w.Add("client-" + std::to_string(c), {{"app", "client-" + std::to_string(c)}});
  }
  std::string y;
  for (int s = 0; s < kSvcs; ++s) y += ServicePolicy(s, kEntries, kClients, 1000);
  w.Apply(y);
  REQUIRE(w.Compiled().rules.size() == kSvcs * kEntries + 1);  // + allow-localhost
  CHECK(w.Table().num_partitions() == AclTable::kMaxPartitions);
  CHECK(w.Table().num_contexts() == 1);  // consolidated
  CHECK(w.Table().contexts_built() == 1);
  CHECK(w.Table().rules_built() == w.Table().num_rules());
  // Every flow agrees with the model, rule ids included (World::Check).
  auto check_all = [&](int base) {
    for (int s = 0; s < kSvcs; ++s) {
      for (int c = 0; c < kClients; ++c) {
        for (int port : {base, base + c, base + kEntries - 1, base + kEntries, 22}) {
          w.Ingress("client-" + std::to_string(c), "svc-" + std::to_string(s), 6, uint16_t(port));
        }
      }
    }
  };
  check_all(1000);
  const auto peers_before = w.Compiled().peer_index;
  const uint32_t rule_before = w.Ingress("client-0", "svc-9", 6, 1000).rule_id;

  SECTION("svc-3's ports change: one partition rebuilt, peer classes reused") {
    w.Apply(ServicePolicy(3, kEntries, kClients, 5000));
    CHECK(w.Table().contexts_built() == 1);
    CHECK(w.Table().num_contexts() == 2);  // the consolidated one + svc-3's partition
    CHECK(w.Table().rules_built() < w.Table().num_rules() / 4);
    CHECK(w.Compiled().peer_index == peers_before);  // the selectors are the same
    CHECK(Denied(w.Ingress("client-0", "svc-3", 6, 1000)));
    CHECK(Allowed(w.Ingress("client-0", "svc-3", 6, 5000)));
    CHECK(Allowed(w.Ingress("client-0", "svc-4", 6, 1000)));
    // Re-applied policies go last, so every rule id after svc-3's moved:
    // the reused partitions report them through the new numbering.
    CHECK(w.Ingress("client-0", "svc-9", 6, 1000).rule_id != rule_before);
    check_all(1000);
  }
  SECTION("a new service and its policy: its class comes last, only its partition is built") {
    w.Add("svc-16", {{"app", "svc-16"}});  // sorts between svc-1 and svc-2
    w.Apply(ServicePolicy(16, kEntries, kClients, 7000));
    const auto& cp = w.Compiled();
    CHECK(cp.num_subject_classes == kSvcs + 2);  // + class 0
    const auto& local = w.LocalInCompileOrder();
    for (size_t i = 0; i < local.size(); ++i) {
      if (local[i]->spec.name == "svc-16") CHECK(cp.subject_class_of_endpoint[i] == kSvcs + 1);
    }
    CHECK(w.Table().contexts_built() == 1);
    CHECK(w.Table().num_contexts() == 2);
    CHECK(w.Table().rules_built() < w.Table().num_rules() / 4);
    CHECK(Allowed(w.Ingress("client-2", "svc-16", 6, 7002)));
    CHECK(Denied(w.Ingress("client-2", "svc-16", 6, 1002)));
    check_all(1000);
    // The service goes again: its number stays a hole, nothing else moves.
    w.eps.erase(w.cluster + "/svc-16");
    w.Apply(ServicePolicy(5, kEntries, kClients, 1000));  // any apply recompiles
    CHECK(w.Compiled().num_subject_classes == kSvcs + 2);
    check_all(1000);
  }
  SECTION("changes to more than kMaxChanged partitions consolidate into one context") {
    std::set<uint32_t> contexts;
    for (int s = 0; s < kSvcs; ++s) {
      w.Apply(ServicePolicy(s, kEntries, kClients, 3000 + 100 * s));
      contexts.insert(w.Table().num_contexts());
      INFO("after changing svc-0..svc-" << s);
      CHECK(w.Table().num_contexts() <= AclTable::kMaxChanged + 1);
      CHECK(Allowed(w.Ingress("client-1", "svc-" + std::to_string(s), 6, uint16_t(3000 + 100 * s + 1))));
      CHECK(Denied(w.Ingress("client-1", "svc-" + std::to_string(s), 6, 1001)));
      if (s + 1 < kSvcs) CHECK(Allowed(w.Ingress("client-1", "svc-" + std::to_string(s + 1), 6, 1001)));
    }
    CHECK(contexts.contains(AclTable::kMaxChanged + 1));  // contexts accumulated...
    CHECK(contexts.contains(1));                          // ...and were consolidated
  }
  SECTION("a new identity matching a peer selector: classes recomputed, ACL partitions kept") {
    w.Add("client-0b", {{"app", "client-0"}, {"extra", "x"}});
    CHECK(w.Compiled().peer_index != peers_before);  // the registry changed
    CHECK(w.Table().contexts_built() == 0);          // the same rules
    CHECK(w.Table().num_contexts() == 1);
    CHECK(Allowed(w.Ingress("client-0b", "svc-5", 6, 1000)));
  }
  SECTION("a policy with a new peer selector for svc-7 only") {
    w.Apply(ServicePolicy(7, 4, kClients, 9000, "svc-7-extra") +
            "  - fromEndpoints: [{matchLabels: {app: newcomer}}]\n");
    CHECK(w.Compiled().peer_index != peers_before);  // a new selector
    w.Add("newcomer", {{"app", "newcomer"}});
    CHECK(Allowed(w.Ingress("newcomer", "svc-7", 6, 80)));
    CHECK(Denied(w.Ingress("newcomer", "svc-6", 6, 80)));
    check_all(1000);
  }
  SECTION("a new client's identity, then a policy admitting it: only svc-7's partition is built") {
    w.Add("newcomer", {{"app", "newcomer"}});  // arrives first, matching no selector yet
    CHECK(w.Table().contexts_built() == 0);    // class 0: the same rules
    const uint32_t classes_before = w.Compiled().num_peer_classes;
    w.Apply(ServicePolicy(7, 4, kClients, 9000, "svc-7-extra") +
            "  - fromEndpoints: [{matchLabels: {app: newcomer}}]\n");
    // Its class is new and numbered last; the other classes, and so the
    // peer ranges of every other rule, stay.
    CHECK(w.Compiled().num_peer_classes == classes_before + 1);
    CHECK(w.Compiled().PeerClass(w.Get("newcomer").id) == classes_before);
    CHECK(w.Table().contexts_built() == 1);
    CHECK(w.Table().num_contexts() == 2);
    CHECK(Allowed(w.Ingress("newcomer", "svc-7", 6, 80)));
    CHECK(Denied(w.Ingress("newcomer", "svc-6", 6, 80)));
    check_all(1000);
    // The policy goes again: its selector stays (unused) and nothing moves.
    w.policies.erase(std::remove_if(w.policies.begin(), w.policies.end(),
                                    [](const auto& p) { return p.name == "svc-7-extra"; }),
                     w.policies.end());
    w.Apply(ServicePolicy(7, kEntries, kClients, 1000));
    CHECK(w.Compiled().num_peer_classes == classes_before + 1);
    CHECK(Denied(w.Ingress("newcomer", "svc-7", 6, 80)));
    check_all(1000);
  }
  SECTION("a clusterwide rule over every service: one context beats copying it 16 times") {
    std::string ccnp =
        "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: all}\n"
        "spec:\n  endpointSelector: {}\n  ingressDeny:\n";
    for (int j = 0; j < 900; ++j) {
      ccnp += "  - fromEndpoints: [{matchLabels: {app: client-1}}]\n    toPorts: [{ports: [{port: '" +
              std::to_string(20000 + j) + "', protocol: TCP}]}]\n";
    }
    w.Apply(ccnp);
    CHECK(w.Table().num_partitions() == 1);
    CHECK(w.Table().num_contexts() == 1);
    CHECK(DeniedByDenyRule(w.Ingress("client-1", "svc-2", 6, 20005)));
    check_all(1000);
  }
}
