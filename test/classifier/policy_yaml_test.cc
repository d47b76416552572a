// YAML -> model: what is accepted, and what is refused with the field and
// line named. A policy with any error contributes nothing.
#include <catch2/catch.hpp>

#include <filesystem>

#include "control/manifest.h"

using namespace meshgate;
using classifier::Diagnostic;

namespace {

struct Parsed {
  control::Manifests m;
  std::vector<Diagnostic> diags;
  bool Has(int line, const std::string& fragment) const {
    for (const auto& d : diags) {
      if (d.line == line && d.message.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
  std::string All() const {
    std::string s;
    for (const auto& d : diags) s += d.ToString() + "\n";
    return s;
  }
};

Parsed Parse(const std::string& yaml, bool local_default = false) {
  Parsed p;
  classifier::ParseContext ctx;
  ctx.file = "t.yaml";
  ctx.cluster_name = "cluster1";
  ctx.policy_default_local_cluster = local_default;
  control::ParseManifests(yaml, ctx, p.m, p.diags);
  return p;
}

std::string Cnp(const std::string& spec_body) {
  return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\nspec:\n" +
         spec_body;
}

}  // namespace

TEST_CASE("unsupported features are refused, naming the field and its line",
          "[parse][cilium-semantics.md decisions]") {
  struct Case {
    std::string body;
    int line;
    std::string fragment;
  };
  // spec starts at line 5; bodies begin at line 6.
  std::vector<Case> cases = {
      {"  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n    toPorts:\n"
       "    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: [{method: GET}]}\n",
       11, "toPorts[0].rules: not supported"},
      {"  endpointSelector: {}\n  egress:\n  - toFQDNs: [{matchName: example.com}]\n", 8,
       "egress[0].toFQDNs: not supported"},
      {"  endpointSelector: {}\n  egress:\n  - toServices: [{k8sService: {serviceName: x}}]\n",
       8, "egress[0].toServices: not supported"},
      {"  endpointSelector: {}\n  egress:\n  - toGroups: [{aws: {}}]\n", 8,
       "egress[0].toGroups: not supported"},
      {"  endpointSelector: {}\n  ingress:\n  - fromGroups: [{aws: {}}]\n", 8,
       "ingress[0].fromGroups: not supported"},
      {"  endpointSelector: {}\n  ingress:\n  - fromRequires: [{}]\n", 8,
       "ingress[0].fromRequires: not supported"},
      {"  endpointSelector: {}\n  egress:\n  - toRequires: [{}]\n", 8,
       "egress[0].toRequires: not supported"},
      {"  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n    authentication: {mode: required}\n",
       9, "ingress[0].authentication: not supported"},
      {"  nodeSelector: {}\n  ingress: [{}]\n", 6, "nodeSelector: not supported"},
      {"  endpointSelector: {}\n  egress:\n  - toCIDRSet: [{cidrGroupRef: g}]\n", 8,
       "cidrGroupRef: not supported"},
      {"  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: '443'}], terminatingTLS: {}}]\n",
       8, "terminatingTLS: not supported"},
  };
  for (const auto& c : cases) {
    auto p = Parse(Cnp(c.body));
    INFO(c.body << "\n--- got:\n" << p.All());
    CHECK(p.Has(c.line, c.fragment));
    CHECK(p.m.policies.empty());  // never partly applied
  }
}

TEST_CASE("wrong types, unknown fields, bad values: clear errors with lines", "[parse]") {
  struct Case {
    std::string body;
    int line;
    std::string fragment;
  };
  std::vector<Case> cases = {
      {"  endpointSelector: {}\n  ingres: []\n", 7, "unknown field \"ingres\""},
      {"  endpointSelector: {}\n  ingress: {fromEndpoints: []}\n", 7, "expected a list"},
      {"  endpointSelector: {matchLabels: [a]}\n  ingress: [{}]\n", 6, "expected a mapping"},
      {"  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: '70000'}]}]\n", 8,
       "out of range"},
      {"  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: '80', endPort: 70}]}]\n",
       8, "below port"},
      {"  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: ICMP}]}]\n",
       8, "unknown protocol"},
      {"  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: 'a_b'}]}]\n", 8,
       "neither a port number nor a valid port name"},
      {"  endpointSelector: {}\n  ingress:\n  - fromEntities: [everyone]\n", 8,
       "unknown entity"},
      {"  endpointSelector: {}\n  ingress:\n  - fromCIDR: [10.0.0.1/8]\n", 8, "host bits set"},
      {"  endpointSelector: {}\n  ingress:\n  - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}]\n",
       8, "is not within"},
      {"  endpointSelector: {}\n  ingress:\n  - icmps: [{fields: [{type: Echo, family: IPv6}]}]\n",
       8, "unknown ICMPv6 type name"},
      {"  endpointSelector: {}\n  ingress:\n  - icmps: [{fields: [{type: 300}]}]\n", 8,
       "out of range"},
      {"  endpointSelector:\n    matchExpressions: [{key: a, operator: In}]\n  ingress: [{}]\n",
       7, "needs non-empty values"},
      {"  endpointSelector:\n    matchExpressions: [{key: a, operator: Like, values: [x]}]\n  ingress: [{}]\n",
       7, "unknown operator"},
      {"  endpointSelector: {}\n", 6, "at least one of ingress"},
      {"  endpointSelector: {}\n  enableDefaultDeny: {ingress: maybe}\n  ingress: [{}]\n", 7,
       "expected true or false"},
  };
  for (const auto& c : cases) {
    auto p = Parse(Cnp(c.body));
    INFO(c.body << "\n--- got:\n" << p.All());
    CHECK(p.Has(c.line, c.fragment));
    CHECK(p.m.policies.empty());
  }
  auto p = Parse("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {}\nspec: {}\n");
  CHECK(p.Has(3, "metadata.name is required"));
  p = Parse("apiVersion: v1\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n");
  CHECK(p.Has(1, "apiVersion must be cilium.io/v2"));
  p = Parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
  CHECK(p.Has(1, "unsupported kind \"Deployment\""));
  p = Parse("just a string\n");
  CHECK(p.Has(1, "expected a Kubernetes object"));
}

TEST_CASE("malformed YAML in one document does not hide the others", "[parse]") {
  auto p = Parse(Cnp("  endpointSelector: {}\n  ingress: [{}]\n") +
                 "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: [\n" +
                 "---\n" + Cnp("  endpointSelector: {}\n  ingres: []\n"));
  CHECK(p.m.policies.size() == 1);
  CHECK(p.diags.size() == 3);  // bad YAML; "ingres"; and so no section at all
  bool yaml_error = false;
  for (const auto& d : p.diags) yaml_error |= d.message.find("invalid YAML") != std::string::npos;
  CHECK(yaml_error);
  CHECK(p.Has(19, "unknown field \"ingres\""));
  CHECK(p.Has(18, "at least one of ingress"));
}

TEST_CASE("hostile input never crashes the parser", "[parse][fuzz]") {
  const std::string base = Cnp(
      "  endpointSelector: {matchLabels: {app: x}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {a: b}}]\n"
      "    toPorts: [{ports: [{port: '80', endPort: 90, protocol: TCP}]}]\n"
      "  egressDeny:\n  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]\n    icmps: [{fields: [{type: 8}]}]\n");
  // Every truncation, and single-character corruptions at every position.
  for (size_t n = 0; n <= base.size(); ++n) {
    auto p = Parse(base.substr(0, n));
    CHECK((p.m.policies.size() + p.diags.size()) <= 2);
  }
  for (size_t i = 0; i < base.size(); ++i) {
    for (char c : {'{', ']', ':', '-', '\t', '\0', '&', '*'}) {
      std::string s = base;
      s[i] = c;
      auto p = Parse(s);
      CHECK(p.m.policies.size() <= 1);
    }
  }
}

TEST_CASE("scoping is applied at parse time", "[parse][cilium:pkg/k8s/apis/cilium.io/utils/utils.go]") {
  auto p = Parse(Cnp("  endpointSelector: {matchLabels: {app: x}}\n  ingress:\n"
                     "  - fromEndpoints: [{matchLabels: {app: y}}, {matchLabels: {reserved:host: ''}}]\n"),
                 true);
  REQUIRE(p.m.policies.size() == 1);
  const auto& r = p.m.policies[0].rules[0];
  CHECK(r.subject.ToString() == "{any.app=x, k8s.io.kubernetes.pod.namespace=default}");
  CHECK(r.ingress[0].peers[0].ToString() ==
        "{any.app=y, k8s.io.cilium.k8s.policy.cluster=cluster1, "
        "k8s.io.kubernetes.pod.namespace=default}");
  // Reserved selectors get neither namespace nor cluster.
  CHECK(r.ingress[0].peers[1].ToString() == "{reserved.host=}");
}

TEST_CASE("policy check accepts every shipped scenario", "[parse][scenarios]") {
  const char* shared = std::getenv("MESHGATE_SHARED");
  std::vector<std::string> files;
  // The shared copy is there in the workspace, not necessarily in a clone.
  if (shared && std::filesystem::exists(std::string(shared) + "/scenarios/seed-walkthrough.yaml")) {
    files.push_back(std::string(shared) + "/scenarios/seed-walkthrough.yaml");
  }
  files.push_back(std::string(MESHGATE_SOURCE_ROOT) + "/test/scenarios/seed-walkthrough.yaml");
  classifier::ParseContext ctx;
  auto r = control::CheckFiles(files, ctx);
  for (const auto& d : r.diags) UNSCOPED_INFO(d.ToString());
  CHECK(r.diags.empty());
  CHECK(r.policies >= 4);
  CHECK(r.services >= 2);
}
