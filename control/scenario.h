// Scenario files (../shared/brief/scenario-format.md, a fixed contract):
// a mesh, what is applied to each cluster, and probes with Cilium 1.18's
// outcome. This is the typed, validated form; simulate.h runs it.
//
// Unknown keys are reported as warnings (the format may grow new optional
// keys) and ignored; a missing or malformed required key is an error with
// its file:line. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "classifier/policy_yaml.h"
#include "control/manifest.h"
#include "identity/address.h"

namespace meshgate::control {

struct ScenarioOptions {
  bool policy_default_local_cluster = false;
  bool policy_audit_mode = false;
  std::string enforcement_mode = "default";  // default | always | never
};

struct ScenarioCluster {
  std::string name;
  uint32_t id = 0;
  ScenarioOptions options;
};

struct ScenarioNamespace {
  std::string cluster, name;
  std::map<std::string, std::string> labels;
};

struct ScenarioEndpoint {
  std::string name, cluster, ns = "default";
  std::map<std::string, std::string> labels;
  std::string service_account;
  std::optional<identity::IpAddr> ipv4, ipv6;
  int line = 0;
  std::string Key() const { return cluster + "/" + name; }
};

struct ScenarioExternal {
  std::string name, via;
  std::optional<identity::IpAddr> ipv4, ipv6;
};

struct ScenarioDelete {
  std::string cluster, kind, name, ns = "default";
};

struct Probe {
  std::string from, to;
  uint16_t port = 0;
  std::string protocol = "TCP";  // TCP | UDP | SCTP | ICMP | ICMPv6
  std::optional<uint8_t> icmp_type;
  int family = 4;                // 4 | 6
  std::string flow;
  std::string expect;            // allow | deny | audit
  std::string served_by, backend, drop_reason, dropped_by;
  int line = 0;
};

struct ScenarioStep {
  std::string name;
  std::vector<EmbeddedManifest> apply;
  std::vector<ScenarioDelete> del;
  std::vector<std::string> remove_endpoints;  // "cluster/name"
  std::vector<ScenarioEndpoint> add_endpoints;
  std::vector<Probe> probes;
};

struct Scenario {
  std::string file, name, description;
  ScenarioOptions options;
  std::vector<ScenarioCluster> clusters;
  std::vector<ScenarioNamespace> namespaces;
  std::vector<ScenarioEndpoint> endpoints;
  std::vector<ScenarioExternal> external;
  std::vector<EmbeddedManifest> manifests;
  std::vector<ScenarioStep> steps;

  const ScenarioCluster* Cluster(const std::string& name) const;
};

// Parses and validates a scenario. Errors go to `diags` (file:line) and make
// it return false; `warnings` gets the unknown keys.
bool ParseScenario(const std::string& text, const std::string& file, Scenario& out,
                   std::vector<Diagnostic>& diags, std::vector<Diagnostic>& warnings);

}  // namespace meshgate::control
