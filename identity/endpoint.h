// Endpoints (pods) and the labels their identity is made of.
//
// Cilium adds the special labels of pkg/k8s/apis/cilium.io/const.go to every
// pod identity (namespace, namespace labels, service account, cluster) and
// strips user labels that would impersonate them (StripPodSpecialLabels,
// filterPodLabels). Pure, no DPDK. Thread-safety: value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "identity/address.h"
#include "identity/labels.h"
#include "identity/numeric.h"

namespace meshgate::identity {

// IANA protocol numbers used by policy.
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;
inline constexpr uint8_t kProtoSctp = 132;

struct NamedPort {
  std::string name;
  uint16_t port = 0;
  uint8_t proto = kProtoTcp;
  bool operator==(const NamedPort&) const = default;
  auto operator<=>(const NamedPort&) const = default;
};

struct EndpointSpec {
  std::string name;
  std::string ns = "default";
  std::string cluster;  // io.cilium.k8s.policy.cluster value
  std::map<std::string, std::string> labels;  // pod labels
  std::string service_account;
  std::map<std::string, std::string> namespace_labels;
  std::vector<IpAddr> addrs;
  std::vector<NamedPort> named_ports;
};

// The identity label set of an endpoint: its pod labels (source k8s, special
// keys stripped) plus k8s:io.kubernetes.pod.namespace, the namespace labels
// (including kubernetes.io/metadata.name, which Kubernetes sets on every
// namespace), the service account (if any) and the cluster name.
Labels IdentityLabels(const EndpointSpec& ep);

}  // namespace meshgate::identity
