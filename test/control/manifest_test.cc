// control/manifest: Services with Cilium's global-service annotations,
// scenario files and their embedded manifests.
#include <catch2/catch.hpp>

#include "control/manifest.h"

using namespace meshgate;

namespace {
control::Manifests ParseOk(const std::string& y) {
  control::Manifests m;
  std::vector<classifier::Diagnostic> d;
  classifier::ParseContext ctx;
  control::ParseManifests(y, ctx, m, d);
  for (const auto& x : d) UNSCOPED_INFO(x.ToString());
  REQUIRE(d.empty());
  return m;
}
std::string Svc(const std::string& annotations, const std::string& spec_extra = "") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n" + annotations +
         "spec:\n  clusterIP: 10.96.0.80\n  selector: {app: myapp}\n" + spec_extra +
         "  ports: [{port: 80, targetPort: 8080}]\n";
}
}  // namespace

TEST_CASE("global service annotations as Cilium parses them",
          "[control][service][cilium:pkg/annotation/k8s.go GetAnnotationShared/ServiceAffinity]") {
  auto g = [](const std::string& ann) { return ParseOk(Svc(ann)).services.at(0).global; };
  auto c = g("    service.cilium.io/global: \"true\"\n    service.cilium.io/affinity: \"local\"\n");
  CHECK(c.global);
  CHECK(c.shared);  // a global service is shared by default
  CHECK(c.affinity == lb::Affinity::kLocal);
  c = g("    service.cilium.io/global: \"TRUE\"\n    service.cilium.io/shared: \"false\"\n");
  CHECK(c.global);
  CHECK_FALSE(c.shared);
  c = g("    service.cilium.io/global: \"true\"\n    service.cilium.io/shared: \"no\"\n");
  CHECK_FALSE(c.shared);  // anything but "true" (any case) is false
  c = g("    io.cilium/global-service: \"true\"\n    io.cilium/service-affinity: \"Remote\"\n");
  CHECK(c.global);
  CHECK(c.affinity == lb::Affinity::kRemote);
  c = g("    service.cilium.io/global: \"true\"\n    service.cilium.io/affinity: \"nearby\"\n");
  CHECK(c.affinity == lb::Affinity::kNone);
  // Ignored unless global.
  c = g("    service.cilium.io/shared: \"true\"\n    service.cilium.io/affinity: \"local\"\n");
  CHECK_FALSE(c.global);
  CHECK_FALSE(c.shared);
  CHECK(c.affinity == lb::Affinity::kNone);
}

TEST_CASE("service ports, addresses and session affinity", "[control][service]") {
  auto s = ParseOk(Svc("    {}\n", "  clusterIPs: [10.96.0.80, fd00::80]\n  sessionAffinity: ClientIP\n"))
               .services.at(0);
  CHECK(s.frontends.size() == 2);
  CHECK(s.ports.at(0).port == 80);
  CHECK(s.ports.at(0).target_port == 8080);
  CHECK(s.session_affinity_client_ip);
  CHECK(s.session_affinity_timeout_s == 10800);
  control::Manifests m;
  std::vector<classifier::Diagnostic> d;
  classifier::ParseContext ctx;
  control::ParseManifests(
      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: 10.96.0.300\n"
      "  ports: [{port: 0}]\n",
      ctx, m, d);
  CHECK(m.services.empty());
  REQUIRE(d.size() == 2);
  CHECK(d[0].line == 5);
  CHECK(d[1].line == 6);
}

TEST_CASE("scenario files: embedded manifests keep their file lines", "[control][scenario]") {
  std::string text =
      "name: x\n"                             // 1
      "clusters: [{name: c1, id: 1}, {name: c2, id: 2, options: {policyDefaultLocalCluster: true}}]\n"
      "manifests:\n"                          // 3
      "  - cluster: c1\n"                     // 4
      "    yaml: &p |\n"                      // 5
      "      apiVersion: cilium.io/v2\n"      // 6
      "      kind: CiliumNetworkPolicy\n"     // 7
      "      metadata: {name: a}\n"           // 8
      "      spec: {endpointSelector: {}, ingres: []}\n"  // 9
      "steps:\n"                              // 10
      "  - name: s\n"                         // 11
      "    apply:\n"                          // 12
      "      - {cluster: c2, yaml: *p}\n";    // 13
  control::ScenarioManifests sm;
  std::vector<classifier::Diagnostic> d;
  REQUIRE(control::ExtractScenarioManifests(text, "s.yaml", sm, d));
  REQUIRE(sm.blocks.size() == 2);
  CHECK(sm.blocks[0].cluster == "c1");
  CHECK(sm.blocks[1].cluster == "c2");
  CHECK(sm.blocks[0].line_offset == 5);
  CHECK(sm.clusters.at(1).second == true);
  control::Manifests m;
  control::ParseManifests(sm.blocks[0].yaml, {"s.yaml"}, m, d, sm.blocks[0].line_offset);
  REQUIRE(!d.empty());
  CHECK(d[0].line == 9);
}

TEST_CASE("documents are split on --- lines with their first line", "[control]") {
  auto docs = control::SplitDocuments("a: 1\n---\nb: 2\n--- # c\nc: 3\n...\n");
  REQUIRE(docs.size() == 4);
  CHECK(docs[0].second == 0);
  CHECK(docs[1].second == 2);
  CHECK(docs[2].second == 4);
}
