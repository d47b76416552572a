// YAML -> model for CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and
// networking.k8s.io/v1 NetworkPolicy.
//
// This is the control-side edge of classifier/: it is the only part that sees
// yaml-cpp, and the fast path never links it. Parsing applies Cilium's
// parse-time scoping (cilium-semantics.md §2.4; Cilium
// pkg/k8s/apis/cilium.io/utils/utils.go ParseToCiliumRule, getEndpointSelector,
// addClusterFilterByDefault; pkg/k8s/network_policy.go for NetworkPolicy).
//
// Anything meshgate cannot enforce exactly (L7 rules, toFQDNs, toServices,
// toGroups, from/toRequires, authentication, nodeSelector, cidrGroupRef) is
// rejected with an error naming the field and line: never enforced as a wider
// L4 allow. Unknown fields are errors too (strict decoding). A policy with any
// error is rejected whole.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "classifier/model.h"
#include "yaml-cpp/yaml.h"

namespace meshgate::classifier {

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 = unknown
  std::string message;
  std::string ToString() const;  // "file:line: message"
};

struct ParseContext {
  std::string file = "<input>";
  // The local cluster's name (cluster entity; cluster filter).
  std::string cluster_name = "default";
  // Cilium 1.18's policy-default-local-cluster (default false).
  bool policy_default_local_cluster = false;
  // Namespace for namespaced objects whose metadata has none.
  std::string default_namespace = "default";
};

// Parses one YAML document known to be a policy kind. Errors are appended to
// `diags`; returns false (and a policy that must not be used) on any error.
bool ParsePolicyDocument(const YAML::Node& doc, const ParseContext& ctx,
                         Policy& out, std::vector<Diagnostic>& diags);

// True when `kind` is one of the three policy kinds.
bool IsPolicyKind(std::string_view kind);

}  // namespace meshgate::classifier
