// The policy compiler: model + identities + local endpoints -> ACL rules.
//
// Invariant (architecture.md #2): the ACL does not grow with the number of
// identities a selector matches. Identities are grouped into peer classes
// (identities matched by the same set of peer selectors share a class) and
// local endpoints into subject classes (same set of subject selectors and the
// same named ports). ACL rules are keyed on {protocol, subject class range,
// peer class range, port range, direction}; there are no addresses in the key,
// so one ACL serves IPv4 and IPv6. Each rule is marked allow or deny;
// acl_table.h gives every deny rule a priority above every allow rule, so
// deny beats allow (Cilium deny.rst: "Deny policies take precedence over
// allow policies").
//
// Pure, no DPDK: the output is plain data, pinned by golden tests, and built
// into an rte_acl context by acl_table.h. Thread-safety: pure functions.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "classifier/model.h"
#include "classifier/selector_index.h"
#include "classifier/verdict.h"
#include "identity/endpoint.h"
#include "identity/registry.h"

namespace meshgate::classifier {

using identity::NumericIdentity;

struct CompileOptions {
  EnforcementMode enforcement = EnforcementMode::kDefault;
  bool audit = false;
  // Cilium allow-localhost=auto under k8s: the local host (identity 1) may
  // always reach local endpoints (layer3.rst note).
  bool allow_localhost = true;
};

// A local endpoint the instance enforces for.
struct LocalEndpoint {
  NumericIdentity identity = 0;
  std::vector<identity::NamedPort> named_ports;
};

// Where an ACL rule came from: one entry of one section of one rule.
struct RuleOrigin {
  std::string policy;  // "CiliumNetworkPolicy default/my-policy", or a builtin
  std::string file;
  int rule_index = 0;   // index in spec+specs order
  std::string section;  // "ingress", "ingressDeny", "egress", "egressDeny"
  int entry_index = 0;
  int line = 0;
  Direction dir = Direction::kIngress;
  bool deny = false;
  std::string ToString() const;
};

// One rte_acl rule, as plain data. Ranges are inclusive.
struct AclRuleSpec {
  enum Category : uint8_t { kDeny = 0, kAllow = 1 };  // a priority band in the ACL
  Category category = kAllow;
  Direction dir = Direction::kIngress;
  uint32_t subject_lo = 0, subject_hi = 0;
  uint32_t peer_lo = 0, peer_hi = 0;  // 0..UINT32_MAX = any peer
  uint8_t proto = 0;                  // 0 = any protocol
  uint16_t port_lo = 0, port_hi = 0;
  uint32_t rule_id = 0;  // 1-based origin index; also decides priority
  bool operator==(const AclRuleSpec&) const = default;
  std::string ToString() const;
};

// The compiler's output: everything a snapshot needs, as flat data.
struct CompiledPolicy {
  CompileOptions options;
  std::vector<AclRuleSpec> rules;
  std::vector<RuleOrigin> origins;  // rule_id - 1

  // Peer classes. Class 0 = matched by no peer selector (also every identity
  // not known at compile time until it is classified).
  std::vector<Selector> peer_selectors;
  std::shared_ptr<const SelectorIndex> peer_index;  // over peer_selectors
  absl::flat_hash_map<NumericIdentity, uint32_t> peer_class_of;
  absl::flat_hash_map<std::vector<uint32_t>, uint32_t> peer_class_by_signature;
  uint32_t num_peer_classes = 1;
  // What the peer classes were computed from, so that a later compilation
  // over the same registry contents keeps them and only adds what new
  // selectors split off (CompileInput::previous): the selectors' canonical
  // strings in index order, each class's signature (index = class) and
  // the registry's version.
  std::vector<std::string> peer_selector_keys;
  std::vector<std::vector<uint32_t>> peer_signatures;
  uint64_t identities_version = 0;

  // Subject classes. Class 0 = selected by no rule and no named ports.
  std::vector<uint32_t> subject_class_of_endpoint;  // parallel to the input
  uint32_t num_subject_classes = 1;
  // Per subject class: bit 0 = ingress default deny, bit 1 = egress.
  std::vector<uint8_t> enforced;
  // Per subject class: a hash of what defines it (the canonical strings of
  // the subject selectors that select it and its named ports), stable
  // across compilations; it places the class's rules in an ACL partition
  // (acl_table.h), so a class whose rules did not change keeps its
  // partition's rte_acl context.
  std::vector<uint64_t> subject_class_key;

  // The class a new identity falls into without recompiling, or nullopt when
  // its selector signature is new (then the policy must be recompiled).
  // Cheap enough for the control thread's update path.
  std::optional<uint32_t> ClassifyIdentity(const identity::Labels& labels) const;
  uint32_t PeerClass(NumericIdentity id) const {
    auto it = peer_class_of.find(id);
    return it == peer_class_of.end() ? 0 : it->second;
  }
};

struct CompileInput {
  const std::vector<Policy>* policies = nullptr;
  const identity::Registry* identities = nullptr;
  std::vector<LocalEndpoint> endpoints;
  // Named ports of all mesh endpoints, for egress named ports (Cilium resolves
  // them against the ipcache's multimap of every endpoint's ports).
  std::vector<identity::NamedPort> mesh_named_ports;
  CompileOptions options;
  // The compilation now in force, if any. While the registry is unchanged
  // (Registry::version) its peer classes are kept and only new selectors
  // are matched against the identities (matching every identity against
  // every selector is most of a compile at 100k identities); its subject
  // classes keep their numbers. So the rules of what a change does not
  // touch stay the same, and so their ACL partitions (acl_table.h;
  // docs/design/classifier.md, "Partitions").
  const CompiledPolicy* previous = nullptr;
};

absl::StatusOr<CompiledPolicy> Compile(const CompileInput& in);

// Calls `fn(origin, peer_rule)` for every entry of every section of every
// rule, in the order that numbers rule ids (1-based). Shared by the compiler
// and Explain so that both name the same rule.
// One resolved L4 match: protocol (0 = any) and an inclusive port range.
struct PortMatch {
  uint8_t proto = 0;
  uint16_t lo = 0, hi = 0;
  auto operator<=>(const PortMatch&) const = default;
};

// The L4 matches of an entry: every port and protocol for an L3-only entry;
// named ports resolved against the subject's own ports (ingress) or every
// mesh endpoint's ports (egress); unresolved names match nothing.
std::vector<PortMatch> ResolvePorts(const PeerRule& pr, Direction dir,
                                    const std::vector<identity::NamedPort>& subject_ports,
                                    const std::vector<identity::NamedPort>& mesh_ports);

void ForEachEntry(const std::vector<Policy>& policies,
                  const std::function<void(RuleOrigin, const Rule&, const PeerRule&)>& fn);

}  // namespace meshgate::classifier
