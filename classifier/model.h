// The policy model: what CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
// and Kubernetes NetworkPolicy mean, after Cilium's parse-time scoping.
//
// Semantics from cilium-semantics.md §1-§3 (Cilium pkg/policy/api/*.go,
// pkg/policy/rule.go, pkg/k8s/apis/cilium.io/utils/utils.go). Selectors here
// already carry the namespace and cluster filters Cilium adds when it parses a
// policy (ParseToCiliumRule), so the compiler only matches labels.
// Pure, no DPDK. Thread-safety: value types; immutable once built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "identity/address.h"
#include "identity/selector.h"

namespace meshgate::classifier {

using identity::Selector;

enum class PolicyKind : uint8_t {
  kCiliumNetworkPolicy,
  kCiliumClusterwideNetworkPolicy,
  kNetworkPolicy,
};
std::string_view PolicyKindName(PolicyKind k);

enum class Direction : uint8_t { kIngress = 0, kEgress = 1 };
std::string_view DirectionName(Direction d);

// One L4 match. A port range [port, end_port]; port 0 with end_port 0 means
// every port of that protocol (Cilium's "0"). For ICMP/ICMPv6 the port is the
// ICMP type (Cilium converts icmps into PortRules with port = type).
struct PortProto {
  uint8_t proto = 0;  // IANA number; never 0 here ("ANY" is expanded)
  uint16_t port = 0;
  uint16_t end_port = 0;
  std::string named;  // non-empty: a named port, resolved at compile time
  bool operator==(const PortProto&) const = default;
};

// One entry of ingress/egress/ingressDeny/egressDeny.
struct PeerRule {
  // Whether any L3 member (fromEndpoints, fromCIDR, fromCIDRSet, fromEntities,
  // fromNodes...) was present at all, even as an explicit empty list.
  bool l3_present = false;
  // The concatenated L3 selectors (Cilium mergeEndpointSelectors). With
  // l3_present && peers.empty() the rule selects no identity (PR #29608).
  std::vector<Selector> peers;
  // CIDR prefixes named by this rule (their selectors are in `peers`); the
  // ipcache allocates identities for them.
  std::vector<identity::Prefix> cidrs;
  bool l4_present = false;  // toPorts or icmps present
  std::vector<PortProto> ports;
  int line = 0;  // YAML line of the entry, for errors and explain

  // The effective peer set: nil L3 with L4 = every identity.
  bool AllPeers() const { return !l3_present && l4_present; }
  // The effective port set: L3 without L4 = every port and protocol.
  bool AllPorts() const { return l3_present && !l4_present; }
};

struct Rule {
  Selector subject;  // endpointSelector (namespace already forced for CNPs)
  std::vector<PeerRule> ingress, ingress_deny, egress, egress_deny;
  // Whether the ingress/egress sections were present (even empty).
  bool has_ingress = false, has_egress = false;
  // enableDefaultDeny; unset = true when the rule has that direction.
  std::optional<bool> default_deny_ingress, default_deny_egress;
  std::string description;
  int line = 0;

  // Cilium evaluateDefaultDenyForRule: a direction goes to default deny when
  // the rule has entries in it (allow or deny), unless enableDefaultDeny says
  // false for that direction.
  bool DefaultDeny(Direction d) const;
  const std::vector<PeerRule>& Allow(Direction d) const {
    return d == Direction::kIngress ? ingress : egress;
  }
  const std::vector<PeerRule>& Deny(Direction d) const {
    return d == Direction::kIngress ? ingress_deny : egress_deny;
  }
};

struct Policy {
  PolicyKind kind = PolicyKind::kCiliumNetworkPolicy;
  std::string ns;  // empty for CCNP
  std::string name;
  std::vector<Rule> rules;
  std::string file;
  int line = 0;

  // "CiliumNetworkPolicy default/my-policy"
  std::string Id() const;
  bool SameObject(const Policy& o) const {
    return kind == o.kind && ns == o.ns && name == o.name;
  }
};

}  // namespace meshgate::classifier
