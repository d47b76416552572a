// Cilium labels: `source:key=value`, and label sets.
//
// Sources and string forms follow Cilium's pkg/labels (LabelSource*,
// Label.String, FormatForKVStore: "DO NOT BREAK THE FORMAT"). Pure, no DPDK.
// Thread-safety: value types.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "identity/address.h"

namespace meshgate::identity {

// Label sources, Cilium pkg/labels.
inline constexpr std::string_view kSourceUnspec = "unspec";
inline constexpr std::string_view kSourceAny = "any";
inline constexpr std::string_view kSourceK8s = "k8s";
inline constexpr std::string_view kSourceContainer = "container";
inline constexpr std::string_view kSourceCni = "cni";
inline constexpr std::string_view kSourceReserved = "reserved";
inline constexpr std::string_view kSourceCidr = "cidr";
inline constexpr std::string_view kSourceCidrGroup = "cidrgroup";
inline constexpr std::string_view kSourceNode = "node";
inline constexpr std::string_view kSourceFqdn = "fqdn";
inline constexpr std::string_view kSourceDirectory = "directory";

bool IsKnownSource(std::string_view source);

// Well-known label keys (Cilium pkg/k8s/apis/cilium.io/const.go).
inline constexpr std::string_view kPodNamespaceLabel =
    "io.kubernetes.pod.namespace";
inline constexpr std::string_view kPolicyClusterLabel =
    "io.cilium.k8s.policy.cluster";
inline constexpr std::string_view kServiceAccountLabel =
    "io.cilium.k8s.policy.serviceaccount";
inline constexpr std::string_view kNamespaceLabelsPrefix =
    "io.cilium.k8s.namespace.labels.";

struct Label {
  std::string source;
  std::string key;
  std::string value;

  // "k8s:app=foo", "reserved:host", "app=foo" (source unspec).
  static absl::StatusOr<Label> Parse(std::string_view text);
  // The `cidr:` label of a prefix; IPv6 colons become '-' as in Cilium's
  // GetCIDRLabels, because ':' separates the source.
  static Label Cidr(const Prefix& p);
  // The prefix a `cidr:` label names, if it is one.
  std::optional<Prefix> CidrPrefix() const;

  std::string ToString() const;  // "k8s:app=foo", "reserved:host"
  bool operator==(const Label&) const = default;
};

// A set of labels, at most one per key as in Cilium's `Labels` map, kept
// sorted by key so that the string forms are canonical.
class Labels {
 public:
  Labels() = default;
  Labels(std::initializer_list<Label> ls);

  // Parses "k8s:a=b;k8s:c=d;" (the kvstore form) or a comma/space separated
  // list of labels.
  static absl::StatusOr<Labels> Parse(std::string_view text);

  void Set(Label l);  // replaces a label of the same key
  const Label* Find(std::string_view key) const;
  const std::vector<Label>& list() const { return labels_; }
  bool empty() const { return labels_.empty(); }
  size_t size() const { return labels_.size(); }

  // Cilium's kvstore identity key: "k8s:app=baz;k8s:io...=bar;".
  std::string FormatForKVStore() const;
  std::string ToString() const;  // "k8s:app=baz,k8s:io...=bar"

  bool operator==(const Labels&) const = default;

 private:
  std::vector<Label> labels_;
};

}  // namespace meshgate::identity
