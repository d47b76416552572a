// Verdicts and the policy drop reasons, with Cilium's numbers.
//
// Verdict values are Hubble's (api/v1/flow/flow.proto: FORWARDED=1,
// DROPPED=2, AUDIT=4). Drop reasons are Cilium's (bpf/lib/drop_reasons.h,
// flow.proto DropReason): 133 POLICY_DENIED "Policy denied" (no allow matched
// under default deny), 181 POLICY_DENY "Policy denied by denylist" (a deny rule
// matched). dataplane/ extends this numbering with its own reasons.
// Header-only, no dependencies; safe for the fast path.
#pragma once

#include <cstdint>
#include <string_view>

namespace meshgate::classifier {

enum class Verdict : uint8_t { kUnknown = 0, kForwarded = 1, kDropped = 2, kAudit = 4 };

enum class PolicyReason : uint8_t {
  kNone = 0,
  kPolicyDenied = 133,  // DROP_POLICY: "Policy denied"
  kPolicyDeny = 181,    // DROP_POLICY_DENY: "Policy denied by denylist"
};

constexpr std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kForwarded: return "FORWARDED";
    case Verdict::kDropped: return "DROPPED";
    case Verdict::kAudit: return "AUDIT";
    default: return "UNKNOWN";
  }
}

constexpr std::string_view PolicyReasonName(PolicyReason r) {
  switch (r) {
    case PolicyReason::kPolicyDenied: return "Policy denied";
    case PolicyReason::kPolicyDeny: return "Policy denied by denylist";
    default: return "";
  }
}

// Enforcement modes (Cilium enable-policy / policyEnforcementMode).
enum class EnforcementMode : uint8_t { kDefault, kAlways, kNever };

// One packet's policy outcome for one direction. POD, 8 bytes, travels in
// mbuf metadata.
struct PolicyResult {
  Verdict verdict = Verdict::kUnknown;
  PolicyReason reason = PolicyReason::kNone;
  uint16_t reserved = 0;
  // 1-based index into CompiledPolicy::origins of the rule that decided, or
  // one of the special values below.
  uint32_t rule_id = 0;
};
inline constexpr uint32_t kRuleNone = 0;  // a default decided

}  // namespace meshgate::classifier
