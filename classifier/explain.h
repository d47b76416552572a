// explain: the verdict for one flow, and the policy rule (or default) that
// produced it, computed from the policy model directly.
//
// This is a second, independent implementation of the verdict: it walks the
// rules as Cilium's documentation states them (deny beats allow; default deny
// per direction once a selecting rule has that direction; enforcement modes;
// audit) without classes or ACLs. Tests use it as the oracle for the compiled
// rte_acl tables; operators use it to ask "why". Rule ids are the compiler's
// (ForEachEntry order), so both name the same rule.
// Pure, no DPDK. Thread-safety: pure function.
#pragma once

#include <string>
#include <vector>

#include "classifier/compile.h"
#include "classifier/model.h"
#include "classifier/verdict.h"
#include "identity/labels.h"

namespace meshgate::classifier {

struct FlowQuery {
  Direction dir = Direction::kIngress;
  // The endpoint enforcing: destination at ingress, source at egress.
  identity::Labels subject;
  std::vector<identity::NamedPort> subject_named_ports;
  // The other side: its identity and labels.
  NumericIdentity peer_id = 0;
  identity::Labels peer;
  uint8_t proto = identity::kProtoTcp;
  uint16_t port = 0;  // destination port; ICMP type for ICMP/ICMPv6
};

struct Explanation {
  PolicyResult result;
  RuleOrigin origin;  // meaningful when result.rule_id != 0
  bool enforced = false;
  std::vector<std::string> selecting;  // policies whose rules select the subject
  std::string ToString() const;        // human summary, several lines
};

Explanation Explain(const std::vector<Policy>& policies, const CompileOptions& options,
                    const FlowQuery& flow,
                    const std::vector<identity::NamedPort>& mesh_named_ports = {});

}  // namespace meshgate::classifier
