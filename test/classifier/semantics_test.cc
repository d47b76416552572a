// Cilium 1.18 policy semantics, each test citing the Cilium source it
// follows (paths in github.com/cilium/cilium; facts in
// ../shared/brief/cilium-semantics.md). Every verdict here is computed by the
// model (Explain) and by the compiled rte_acl table, which must agree.
#include <catch2/catch.hpp>

#include "test/classifier/world.h"

using namespace meshgate;
using namespace meshgate::test;
using identity::kProtoIcmp;
using identity::kProtoIcmpv6;
using identity::kProtoSctp;
using identity::kProtoTcp;
using identity::kProtoUdp;
namespace reserved = identity::reserved;

namespace {

// The seed walkthrough's cast, in two clusters.
World Seed() {
  World w;
  w.Add("frontend", {{"app", "frontend"}});
  w.Add("test", {{"app", "test"}});
  w.Add("myapp", {{"app", "myapp"}});
  w.Add("frontend", {{"app", "frontend"}}, "default", "cluster2");
  w.Add("test", {{"app", "test"}}, "default", "cluster2");
  w.Add("myapp", {{"app", "myapp"}}, "default", "cluster2");
  return w;
}

const char* kMyPolicy = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend}
)";

}  // namespace

TEST_CASE("no policy selects an endpoint: everything is allowed (enforcement default)",
          "[semantics][cilium:Documentation/security/policy/intro.rst]") {
  World w = Seed();
  CHECK(Allowed(w.Ingress("test", "myapp")));
  CHECK(Allowed(w.Egress("test", "myapp")));
  CHECK(w.last_explain.result.rule_id == classifier::kRuleNone);
}

TEST_CASE("seed: fromEndpoints app=frontend admits frontends of every cluster (1.18)",
          "[semantics][seed][cilium:pkg/clustermesh/types/option.go PolicyDefaultLocalCluster=false]") {
  World w = Seed();
  w.Apply(kMyPolicy);
  CHECK(Allowed(w.Ingress("cluster1/frontend", "myapp")));
  CHECK(Allowed(w.Ingress("cluster2/frontend", "myapp")));
  CHECK(Denied(w.Ingress("cluster1/test", "myapp")));
  CHECK(Denied(w.Ingress("cluster2/test", "myapp")));
  // Ingress policy says nothing about egress.
  CHECK(Allowed(w.Egress("myapp", "cluster1/test")));
  // The allowing rule is named.
  w.Ingress("cluster2/frontend", "myapp");
  CHECK(w.last_explain.origin.policy == "CiliumNetworkPolicy default/my-policy");
  CHECK(w.last_explain.origin.section == "ingress");
}

TEST_CASE("seed step 6: io.cilium.k8s.policy.cluster restricts sources; names are case-sensitive",
          "[semantics][seed][cilium:Documentation/network/clustermesh/policy.rst]") {
  World w = Seed();
  w.cluster = "cluster2";
  w.cluster_id = 2;
  // Re-home: the instance under test is cluster2's.
  World w2;
  w2.cluster = "cluster2";
  w2.cluster_id = 2;
  w2.Add("frontend", {{"app", "frontend"}}, "default", "cluster1");
  w2.Add("frontend", {{"app", "frontend"}});
  w2.Add("myapp", {{"app", "myapp"}});
  w2.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend, io.cilium.k8s.policy.cluster: cluster1}
)");
  CHECK(Allowed(w2.Ingress("cluster1/frontend", "myapp")));
  CHECK(Denied(w2.Ingress("cluster2/frontend", "myapp")));
  w2.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend, io.cilium.k8s.policy.cluster: Cluster1}
)");
  CHECK(Denied(w2.Ingress("cluster1/frontend", "myapp")));
}

TEST_CASE("policyDefaultLocalCluster=true (1.19) restricts unscoped selectors to the local cluster",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/utils/utils.go addClusterFilterByDefault]") {
  World w = Seed();
  w.policy_default_local_cluster = true;
  w.Apply(kMyPolicy);
  CHECK(Allowed(w.Ingress("cluster1/frontend", "myapp")));
  CHECK(Denied(w.Ingress("cluster2/frontend", "myapp")));
  // An explicit cluster key opts out of the default filter.
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: any-cluster}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend}
      matchExpressions: [{key: io.cilium.k8s.policy.cluster, operator: Exists}]
)");
  CHECK(Allowed(w.Ingress("cluster2/frontend", "myapp")));
  // Reserved selectors are exempt from the filter; entities are untouched.
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: world}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEntities: [world]
)");
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "myapp")));
}

TEST_CASE("a CNP only selects endpoints of its own namespace; CCNP selects all namespaces",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/utils/utils.go ParseToCiliumRule]") {
  World w;
  w.Add("a", {{"app", "x"}}, "prod");
  w.Add("b", {{"app", "x"}}, "default");
  w.Add("c", {{"app", "client"}}, "default");
  // A CNP in prod, even one naming another namespace in its selector.
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: x, k8s:io.kubernetes.pod.namespace: default}
  ingress: [{fromEntities: [world]}]
)");
  CHECK(Denied(w.Ingress("c", "a")));   // prod/a is selected (namespace overridden)
  CHECK(Allowed(w.Ingress("c", "b")));  // default/b is not
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: cw}
spec:
  endpointSelector: {matchLabels: {app: x}}
  ingress: [{fromEntities: [world]}]
)");
  CHECK(Denied(w.Ingress("c", "b")));
}

TEST_CASE("fromEndpoints [{}]: CNP = its namespace; CCNP = every pod, never reserved identities",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/utils/utils.go getEndpointSelector]") {
  World w;
  w.Add("srv", {{"app", "srv"}}, "prod");
  w.Add("same", {{"app", "c"}}, "prod");
  w.Add("other", {{"app", "c"}}, "dev");
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ns-only, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{}]}]
)");
  CHECK(Allowed(w.Ingress("same", "srv")));
  CHECK(Denied(w.Ingress("other", "srv")));
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "srv")));
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: all-pods}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{}]}]
)");
  CHECK(Allowed(w.Ingress("other", "srv")));
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "srv")));
  CHECK(Denied(w.IngressFromId(reserved::kRemoteNode, "srv")));
}

TEST_CASE("namespace-label selectors cross namespaces without the implicit namespace",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/utils/utils.go getEndpointSelector]") {
  World w;
  w.Add("srv", {{"app", "srv"}}, "prod");
  w.Add("a", {{"app", "c"}}, "team-a", "", {}, {{"team", "a"}});
  w.Add("b", {{"app", "c"}}, "team-b", "", {}, {{"team", "b"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: prod}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchLabels: {io.cilium.k8s.namespace.labels.team: a}
)");
  CHECK(Allowed(w.Ingress("a", "srv")));
  CHECK(Denied(w.Ingress("b", "srv")));
}

TEST_CASE("explicit empty L3 lists select no identity",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/utils/utils.go mergeEndpointSelectors; PR 29608]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  for (const char* field : {"fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities"}) {
    w.Apply(std::string(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: empty}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - )") + field + R"(: []
    toPorts: [{ports: [{port: "80"}]}]
)");
    INFO(field);
    CHECK(Denied(w.Ingress("c", "srv")));
    CHECK(Denied(w.IngressFromId(reserved::kWorld, "srv")));
  }
}

TEST_CASE("an L4-only rule admits every peer, world included, on its ports",
          "[semantics][cilium:pkg/policy/rule.go mergeIngress; Documentation/security/policy/layer4.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}}, "other-ns");
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l4}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
)");
  CHECK(Allowed(w.Ingress("c", "srv", kProtoTcp, 80)));
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "srv", kProtoTcp, 80)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 81)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoUdp, 80)));
  // "If any layer 4 policy is specified, then ICMP will be blocked".
  CHECK(Denied(w.Ingress("c", "srv", kProtoIcmp, 8)));
}

TEST_CASE("an L3-only rule admits all ports and protocols, ICMP included",
          "[semantics][cilium:pkg/policy/rule.go PortProtocol{Port:0,Protocol:ANY}]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l3}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: c}}]}]
)");
  for (auto [proto, port] : std::vector<std::pair<uint8_t, uint16_t>>{
           {kProtoTcp, 1}, {kProtoTcp, 65535}, {kProtoUdp, 53}, {kProtoSctp, 9},
           {kProtoIcmp, 8}, {kProtoIcmpv6, 128}, {47, 0}}) {
    INFO(int(proto) << "/" << port);
    CHECK(Allowed(w.Ingress("c", "srv", proto, port)));
  }
}

TEST_CASE("ingress: [{}] selects no peer but switches ingress to default deny (1.18)",
          "[semantics][cilium:pkg/policy/rule.go; examples/policies/l3/egress-default-deny]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dd}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  egress: [{}]
)");
  CHECK(Denied(w.Egress("srv", "c")));
  CHECK(Allowed(w.Ingress("c", "srv")));
  // ingress: [] (present but empty) does not switch default deny on.
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dd}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: []
)");
  CHECK(Allowed(w.Ingress("c", "srv")));
  CHECK(Allowed(w.Egress("srv", "c")));
}

TEST_CASE("entries, L3 members and policies are ORed; L4 is ANDed with L3",
          "[semantics][cilium:Documentation/security/policy/intro.rst Rule Basics]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("a", {{"app", "a"}});
  w.Add("b", {{"app", "b"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p1}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: a}}]
    fromEntities: [world]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p2}
specs:
- endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: b}}], toPorts: [{ports: [{port: "443"}]}]}]
)");
  CHECK(Allowed(w.Ingress("a", "srv", kProtoTcp, 80)));
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "srv", kProtoTcp, 80)));
  CHECK(Denied(w.Ingress("a", "srv", kProtoTcp, 443)));
  CHECK(Allowed(w.Ingress("b", "srv", kProtoTcp, 443)));
  CHECK(Allowed(w.Ingress("b", "srv", kProtoUdp, 443)));  // ANY = TCP/UDP/SCTP
  CHECK(Denied(w.Ingress("b", "srv", kProtoTcp, 80)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 80)));
}

TEST_CASE("spec and specs are both imported",
          "[semantics][cilium:pkg/k8s/apis/cilium.io/v2/cnp_types.go]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("a", {{"app", "a"}});
  w.Add("b", {{"app", "b"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: both}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: a}}]}]
specs:
- endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: b}}]}]
)");
  CHECK(Allowed(w.Ingress("a", "srv")));
  CHECK(Allowed(w.Ingress("b", "srv")));
  w.Ingress("b", "srv");
  CHECK(w.last_explain.origin.rule_index == 1);
}

TEST_CASE("ports: ranges with endPort, ANY is TCP+UDP+SCTP but never ICMP, port 0 is all",
          "[semantics][cilium:pkg/policy/api/l4.go; pkg/policy/rule.go IsAny]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ports}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: c}}]
    toPorts:
    - ports:
      - {port: "8000", endPort: 8010, protocol: TCP}
      - {port: "53", protocol: ANY}
      - {port: "0", protocol: SCTP}
)");
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 7999)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoTcp, 8000)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoTcp, 8010)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 8011)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoTcp, 53)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoUdp, 53)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoSctp, 53)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoIcmp, 53)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoSctp, 31337)));
}

TEST_CASE("named ports: ingress resolves against the endpoint's own ports, egress the mesh's",
          "[semantics][cilium:pkg/policy/api/l4.go; Documentation/security/policy/layer4.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}}, "default", "", {{"http", 8080, kProtoTcp}});
  w.Add("srv2", {{"app", "srv"}}, "default", "", {{"http", 9090, kProtoTcp}});
  w.Add("bare", {{"app", "srv"}}, "other");
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: named}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: c}}]
    toPorts: [{ports: [{port: http, protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: named-egress}
spec:
  endpointSelector: {matchLabels: {app: c}}
  egress:
  - toEndpoints: [{matchLabels: {app: srv}}]
    toPorts: [{ports: [{port: http, protocol: TCP}]}]
)");
  CHECK(Allowed(w.Ingress("c", "srv", kProtoTcp, 8080)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 9090)));
  CHECK(Allowed(w.Ingress("c", "srv2", kProtoTcp, 9090)));
  CHECK(Denied(w.Ingress("c", "srv2", kProtoTcp, 8080)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoUdp, 8080)));
  // Egress: every port named "http" anywhere in the mesh.
  CHECK(Allowed(w.Egress("c", "srv", kProtoTcp, 8080)));
  CHECK(Allowed(w.Egress("c", "srv", kProtoTcp, 9090)));
  CHECK(Denied(w.Egress("c", "srv", kProtoTcp, 80)));
}

TEST_CASE("icmps: types by number or name, per family; icmps-only rules admit all peers",
          "[semantics][cilium:Documentation/security/policy/layer4.rst; pkg/k8s/apis/cilium.io/utils/utils.go icmpRules]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: icmp}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - icmps:
    - fields:
      - {type: 8}
      - {type: EchoRequest, family: IPv6}
      - {type: TimeExceeded, family: IPv4}
)");
  CHECK(Allowed(w.Ingress("c", "srv", kProtoIcmp, 8)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoIcmp, 11)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoIcmp, 0)));
  CHECK(Allowed(w.Ingress("c", "srv", kProtoIcmpv6, 128)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoIcmpv6, 8)));
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "srv", kProtoIcmp, 8)));
  CHECK(Denied(w.Ingress("c", "srv", kProtoTcp, 8)));
}

TEST_CASE("deny beats allow across policies; the doc's table: allow L3, deny 80/TCP",
          "[semantics][cilium:Documentation/security/policy/deny.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("client", {{"app", "client"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: deny-80}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingressDeny:
  - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
)");
  CHECK(DeniedByDenyRule(w.Ingress("client", "srv", kProtoTcp, 80)));
  CHECK(w.last_explain.origin.policy == "CiliumClusterwideNetworkPolicy deny-80");
  CHECK(Allowed(w.Ingress("client", "srv", kProtoTcp, 81)));
  CHECK(Allowed(w.Ingress("client", "srv", kProtoIcmp, 8)));  // ping allowed
}

TEST_CASE("a deny-only policy puts the endpoint into default deny",
          "[semantics][cilium:Documentation/security/policy/deny.rst; evaluateDefaultDenyForRule]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Add("bad", {{"app", "bad"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-bad}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: bad}}]}]
)");
  CHECK(DeniedByDenyRule(w.Ingress("bad", "srv")));
  CHECK(Denied(w.Ingress("c", "srv")));
}

TEST_CASE("enableDefaultDeny: false keeps a direction open unless another policy asks",
          "[semantics][cilium:pkg/policy/api/rule.go EnableDefaultDeny; intro.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Add("d", {{"app", "d"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: additive}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  enableDefaultDeny: {ingress: false}
  ingress: [{fromEndpoints: [{matchLabels: {app: c}}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: d}}], toPorts: [{ports: [{port: "22"}]}]}]
)");
  CHECK(Allowed(w.Ingress("c", "srv")));
  CHECK(Allowed(w.Ingress("d", "srv", kProtoTcp, 80)));
  CHECK(DeniedByDenyRule(w.Ingress("d", "srv", kProtoTcp, 22)));
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: strict}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: c}}]}]
)");
  CHECK(Denied(w.Ingress("d", "srv", kProtoTcp, 80)));
}

TEST_CASE("enforcement modes: always denies unselected endpoints, never allows everything",
          "[semantics][cilium:Documentation/security/policy/intro.rst enable-policy]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Apply(kMyPolicy);  // selects nothing here
  classifier::CompileOptions o;
  o.enforcement = classifier::EnforcementMode::kAlways;
  w.SetOptions(o);
  CHECK(Denied(w.Ingress("c", "srv")));
  CHECK(Denied(w.Egress("srv", "c")));
  CHECK(Allowed(w.IngressFromId(reserved::kHost, "srv")));  // allow-localhost
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-all}
spec:
  endpointSelector: {}
  ingressDeny: [{fromEntities: [all]}]
)");
  o.enforcement = classifier::EnforcementMode::kNever;
  w.SetOptions(o);
  CHECK(Allowed(w.Ingress("c", "srv")));
}

TEST_CASE("audit mode forwards would-be drops and reports them as AUDIT with their reason",
          "[semantics][cilium:Documentation/security/policy-creation.rst; api/v1/flow/flow.proto]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("c", {{"app", "c"}});
  w.Add("d", {{"app", "d"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress: [{fromEndpoints: [{matchLabels: {app: c}}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: d}}]}]
)");
  classifier::CompileOptions o;
  o.audit = true;
  w.SetOptions(o);
  auto r = w.Ingress("c", "srv");
  CHECK(r.verdict == Verdict::kForwarded);
  r = w.Ingress("d", "srv");
  CHECK(r.verdict == Verdict::kAudit);
  CHECK(r.reason == PolicyReason::kPolicyDeny);
  r = w.IngressFromId(reserved::kWorld, "srv");
  CHECK(r.verdict == Verdict::kAudit);
  CHECK(r.reason == PolicyReason::kPolicyDenied);
  CHECK(int(PolicyReason::kPolicyDenied) == 133);
  CHECK(int(PolicyReason::kPolicyDeny) == 181);
}

TEST_CASE("the local host may always reach local endpoints (allow-localhost=auto)",
          "[semantics][cilium:Documentation/security/policy/layer3.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {}
  ingress: [{}]
)");
  CHECK(Allowed(w.IngressFromId(reserved::kHost, "srv")));
  CHECK(Denied(w.IngressFromId(reserved::kRemoteNode, "srv")));
}

TEST_CASE("entities: cluster is the local cluster only; world, remote-node, kube-apiserver, all",
          "[semantics][cilium:pkg/policy/api/entity.go EntitySelectorMapping]") {
  World w = Seed();
  auto check_entity = [&](const char* entity) {
    w.Apply(std::string(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ent}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEntities: [)") + entity + "]}]\n");
  };
  check_entity("cluster");
  CHECK(Allowed(w.Ingress("cluster1/test", "myapp")));
  CHECK(Denied(w.Ingress("cluster2/test", "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kRemoteNode, "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kKubeApiserver, "myapp")));
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "myapp")));
  check_entity("world");
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kWorldIpv4, "myapp")));
  CHECK(Denied(w.Ingress("cluster1/test", "myapp")));
  check_entity("remote-node");
  CHECK(Allowed(w.IngressFromId(reserved::kRemoteNode, "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kKubeApiserver, "myapp")));  // carries remote-node
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "myapp")));
  check_entity("all");
  CHECK(Allowed(w.Ingress("cluster2/test", "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kWorld, "myapp")));
  CHECK(Allowed(w.IngressFromId(reserved::kRemoteNode, "myapp")));
  check_entity("none");
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "myapp")));
  check_entity("health");
  CHECK(Allowed(w.IngressFromId(reserved::kHealth, "myapp")));
  CHECK(Denied(w.IngressFromId(reserved::kHost, "myapp")) == false);  // host: allow-localhost
}

TEST_CASE("CIDR rules: longest prefix, except, world carried, never a mesh endpoint's own IP",
          "[semantics][cilium:Documentation/security/policy/layer3.rst; pkg/labels GetCIDRLabels]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  auto pod = w.Add("pod", {{"app", "pod"}});
  identity::IpCacheEntry e;
  e.id = pod;
  w.ipcache.Upsert(identity::Prefix::Host(*identity::IpAddr::Parse("10.0.5.5")), e);
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidr}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  egress:
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]
  - toCIDR: [192.0.2.0/24]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
)");
  CHECK(Allowed(w.EgressToId("srv", w.IdentityOf("10.1.2.3"))));
  CHECK(Denied(w.EgressToId("srv", w.IdentityOf("10.96.0.10"))));
  CHECK(Denied(w.EgressToId("srv", w.IdentityOf("10.0.5.5"))));  // a mesh endpoint
  CHECK(w.IdentityOf("10.0.5.5") == pod);
  CHECK(Allowed(w.EgressToId("srv", w.IdentityOf("192.0.2.9"), kProtoTcp, 443)));
  CHECK(Denied(w.EgressToId("srv", w.IdentityOf("192.0.2.9"), kProtoTcp, 80)));
  CHECK(Denied(w.EgressToId("srv", w.IdentityOf("198.51.100.1"))));
  CHECK(w.IdentityOf("198.51.100.1") == reserved::kWorld);
  // CIDR identities carry reserved:world: the world entity matches them.
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: world}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  egress: [{toEntities: [world]}]
)");
  CHECK(Allowed(w.EgressToId("srv", w.IdentityOf("10.96.0.10"))));
}

TEST_CASE("0.0.0.0/0 is world",
          "[semantics][cilium:Documentation/security/policy/layer3.rst]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("pod", {{"app", "pod"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: all-v4}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  egress: [{toCIDR: [0.0.0.0/0]}]
)");
  CHECK(Allowed(w.EgressToId("srv", reserved::kWorld)));
  CHECK(Allowed(w.EgressToId("srv", w.IdentityOf("203.0.113.1"))));
  CHECK(Denied(w.Egress("srv", "pod")));
}

TEST_CASE("matchExpressions: In, NotIn, Exists, DoesNotExist (NotIn matches a missing key)",
          "[semantics][cilium:pkg/policy/api/selector.go; k8s LabelSelector]") {
  World w;
  w.Add("srv", {{"app", "srv"}});
  w.Add("prod", {{"app", "c"}, {"env", "prod"}});
  w.Add("dev", {{"app", "c"}, {"env", "dev"}});
  w.Add("none", {{"app", "c"}});
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: expr}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: env, operator: NotIn, values: [dev]}]
)");
  CHECK(Allowed(w.Ingress("prod", "srv")));
  CHECK(Denied(w.Ingress("dev", "srv")));
  CHECK(Allowed(w.Ingress("none", "srv")));
  w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: expr}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: env, operator: DoesNotExist}]
  - fromEndpoints:
    - matchExpressions: [{key: k8s:env, operator: In, values: [prod, staging]}]
)");
  CHECK(Allowed(w.Ingress("prod", "srv")));
  CHECK(Denied(w.Ingress("dev", "srv")));
  CHECK(Allowed(w.Ingress("none", "srv")));
}

TEST_CASE("NetworkPolicy: podSelector scoping, namespaceSelector, ipBlock, policyTypes",
          "[semantics][cilium:pkg/k8s/network_policy.go]") {
  World w;
  w.Add("db", {{"app", "db"}}, "prod");
  w.Add("api", {{"app", "api"}}, "prod");
  w.Add("api-dev", {{"app", "api"}}, "dev", "", {}, {{"env", "dev"}});
  w.Add("mon", {{"app", "mon"}}, "ops", "", {}, {{"team", "ops"}});
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: api}}
    ports: [{port: 5432}]
  - from:
    - namespaceSelector: {matchLabels: {team: ops}}
  - from:
    - ipBlock: {cidr: 192.0.2.0/24}
)");
  CHECK(Allowed(w.Ingress("api", "db", kProtoTcp, 5432)));
  CHECK(Denied(w.Ingress("api", "db", kProtoUdp, 5432)));  // protocol defaults to TCP
  CHECK(Denied(w.Ingress("api-dev", "db", kProtoTcp, 5432)));  // podSelector: own namespace
  CHECK(Allowed(w.Ingress("mon", "db", kProtoTcp, 9100)));
  CHECK(Allowed(w.IngressFromId(w.IdentityOf("192.0.2.7"), "db", kProtoTcp, 1)));
  CHECK(Denied(w.IngressFromId(reserved::kWorld, "db")));
  // policyTypes [Ingress, Egress] with no egress rules: egress denied.
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lock, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress: [{}]
)");
  CHECK(Denied(w.Egress("api", "db")));
  CHECK(Allowed(w.Ingress("mon", "api")));  // from: missing = all sources
}

TEST_CASE("the ACL does not grow with the identities a selector matches",
          "[semantics][invariant][architecture.md invariant 2]") {
  auto rules_for = [](int clients) {
    World w;
    w.Add("srv", {{"app", "srv"}});
    for (int i = 0; i < clients; ++i) {
      w.Add("client-" + std::to_string(i),
            {{"app", "frontend"}, {"pod-template-hash", std::to_string(i)}});
    }
    w.Apply(kMyPolicy);
    w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: f}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "80"}]}]
)");
    const auto& cp = w.Compiled();
    return std::make_pair(cp.rules.size(), cp.num_peer_classes);
  };
  auto small = rules_for(1);
  auto large = rules_for(2000);
  CHECK(small == large);
}
