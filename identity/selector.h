// Label selectors with Cilium's key sanitising and Kubernetes' operators.
//
// Key sanitising (Cilium pkg/policy/api/selector.go, `sanitized`):
//   "<src>:<key>" -> source src;  "<key>" (with or without dots) -> source any.
// A requirement of source `any` matches a label of that key from any source;
// one of source `k8s` matches only k8s labels (`Label.Has`). Requirements on
// `cidr:` keys match prefix-aware: cidr:10.0.0.1/32 has cidr:10.0.0.0/24.
// Operators follow Kubernetes' LabelSelector: NotIn and DoesNotExist also
// match when the key is absent. An empty selector matches everything.
// Pure, no DPDK. Thread-safety: value types.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "identity/labels.h"

namespace meshgate::identity {

enum class SelectorOp : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };

absl::StatusOr<SelectorOp> ParseSelectorOp(std::string_view op);
std::string_view SelectorOpName(SelectorOp op);

struct Requirement {
  std::string source;  // "any", "k8s", "reserved", "cidr", ...
  std::string key;
  SelectorOp op = SelectorOp::kExists;
  std::vector<std::string> values;  // sorted, for In/NotIn
  std::optional<Prefix> cidr;       // set when source == "cidr"

  // Builds a requirement from a user key ("app", "k8s:app", "reserved:host").
  static Requirement Make(std::string_view user_key, SelectorOp op,
                          std::vector<std::string> values = {});
  bool Matches(const Labels& labels) const;
  std::string ToString() const;  // canonical
  bool operator==(const Requirement& o) const {
    return source == o.source && key == o.key && op == o.op && values == o.values;
  }
};

class Selector {
 public:
  Selector() = default;  // matches everything
  explicit Selector(std::vector<Requirement> reqs);

  static Selector MatchLabel(std::string_view user_key, std::string_view value);
  static Selector HasLabel(std::string_view user_key);  // Exists

  void Add(Requirement r);
  bool Matches(const Labels& labels) const;
  bool IsWildcard() const { return reqs_.empty(); }
  const std::vector<Requirement>& requirements() const { return reqs_; }

  // True if some requirement is on `key` with source `any` or one of
  // `sources` (Cilium checks "k8s." and "any." prefixed keys).
  bool HasKey(std::string_view key) const;
  bool HasKeyPrefix(std::string_view key_prefix) const;
  bool HasSource(std::string_view source) const;

  // Canonical string: requirements sorted, so equal selectors compare equal.
  const std::string& ToString() const { return canonical_; }
  bool operator==(const Selector& o) const { return canonical_ == o.canonical_; }

 private:
  void Canonicalize();
  std::vector<Requirement> reqs_;
  std::string canonical_ = "{}";
};

}  // namespace meshgate::identity
