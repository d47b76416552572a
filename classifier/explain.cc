#include "classifier/explain.h"

#include <algorithm>

#include "identity/strutil.h"
#include "absl/strings/str_join.h"

namespace meshgate::classifier {
namespace {

bool PeerMatches(const PeerRule& pr, const identity::Labels& peer) {
  if (pr.AllPeers()) return true;
  for (const auto& s : pr.peers) {
    if (s.Matches(peer)) return true;
  }
  return false;
}

bool PortMatches(const std::vector<PortMatch>& ports, uint8_t proto, uint16_t port) {
  for (const auto& pm : ports) {
    if ((pm.proto == 0 || pm.proto == proto) && port >= pm.lo && port <= pm.hi) return true;
  }
  return false;
}

}  // namespace

std::string Explanation::ToString() const {
  std::string out = meshgate::StrCat("verdict: ", VerdictName(result.verdict));
  if (result.reason != PolicyReason::kNone) {
    meshgate::StrAppend(&out, " (", int(result.reason), " ", PolicyReasonName(result.reason), ")");
  }
  meshgate::StrAppend(&out, "\n");
  if (result.rule_id != kRuleNone) {
    meshgate::StrAppend(&out, "decided by: ", origin.ToString(), "\n");
  } else if (enforced) {
    meshgate::StrAppend(&out, "decided by: default deny (no allow rule matched)\n");
  } else {
    meshgate::StrAppend(&out, "decided by: default allow (no rule puts this direction "
                          "into default deny)\n");
  }
  if (selecting.empty()) {
    meshgate::StrAppend(&out, "selecting policies: none\n");
  } else {
    meshgate::StrAppend(&out, "selecting policies: ", absl::StrJoin(selecting, ", "), "\n");
  }
  return out;
}

Explanation Explain(const std::vector<Policy>& policies, const CompileOptions& options,
                    const FlowQuery& flow,
                    const std::vector<identity::NamedPort>& mesh_named_ports) {
  Explanation ex;
  for (const auto& p : policies) {
    for (const auto& r : p.rules) {
      if (!r.subject.Matches(flow.subject)) continue;
      if (ex.selecting.empty() || ex.selecting.back() != p.Id()) ex.selecting.push_back(p.Id());
      ex.enforced = ex.enforced || r.DefaultDeny(flow.dir);
    }
  }
  if (options.enforcement == EnforcementMode::kAlways) ex.enforced = true;
  if (options.enforcement == EnforcementMode::kNever) {
    ex.enforced = false;
    ex.result.verdict = Verdict::kForwarded;
    return ex;
  }
  uint32_t id = 0;
  uint32_t deny_id = 0, allow_id = 0;
  RuleOrigin deny_origin, allow_origin;
  ForEachEntry(policies, [&](RuleOrigin o, const Rule& r, const PeerRule& pr) {
    ++id;
    if (o.dir != flow.dir || !r.subject.Matches(flow.subject)) return;
    if (!pr.l3_present && !pr.l4_present) return;
    if (!PeerMatches(pr, flow.peer)) return;
    auto ports = ResolvePorts(pr, flow.dir, flow.subject_named_ports, mesh_named_ports);
    if (!PortMatches(ports, flow.proto, flow.port)) return;
    if (o.deny && deny_id == 0) {
      deny_id = id;
      deny_origin = o;
    } else if (!o.deny && allow_id == 0) {
      allow_id = id;
      allow_origin = o;
    }
  });
  if (allow_id == 0 && options.allow_localhost && flow.dir == Direction::kIngress &&
      flow.peer.Find("host") && flow.peer.Find("host")->source == identity::kSourceReserved) {
    allow_id = id + 1;
    allow_origin.policy = "allow-localhost (the local host may always reach local endpoints)";
    allow_origin.dir = Direction::kIngress;
  }
  auto drop = [&](PolicyReason reason) {
    ex.result.verdict = options.audit ? Verdict::kAudit : Verdict::kDropped;
    ex.result.reason = reason;
  };
  if (deny_id != 0) {
    drop(PolicyReason::kPolicyDeny);
    ex.result.rule_id = deny_id;
    ex.origin = deny_origin;
  } else if (allow_id != 0) {
    ex.result.verdict = Verdict::kForwarded;
    ex.result.rule_id = allow_id;
    ex.origin = allow_origin;
  } else if (ex.enforced) {
    drop(PolicyReason::kPolicyDenied);
  } else {
    ex.result.verdict = Verdict::kForwarded;
  }
  return ex;
}

}  // namespace meshgate::classifier
