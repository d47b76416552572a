#include "identity/endpoint.h"

#include "identity/strutil.h"

namespace meshgate::identity {

Labels IdentityLabels(const EndpointSpec& ep) {
  Labels out;
  auto k8s = [&](std::string key, std::string value) {
    out.Set(Label{std::string(kSourceK8s), std::move(key), std::move(value)});
  };
  for (const auto& [k, v] : ep.labels) {
    // StripPodSpecialLabels / filterPodLabels: users cannot set these.
    if (k == kPodNamespaceLabel || k.starts_with("io.cilium.k8s")) continue;
    k8s(k, v);
  }
  k8s(std::string(kPodNamespaceLabel), ep.ns);
  k8s(meshgate::StrCat(kNamespaceLabelsPrefix, "kubernetes.io/metadata.name"), ep.ns);
  for (const auto& [k, v] : ep.namespace_labels) {
    k8s(meshgate::StrCat(kNamespaceLabelsPrefix, k), v);
  }
  if (!ep.service_account.empty()) k8s(std::string(kServiceAccountLabel), ep.service_account);
  if (!ep.cluster.empty()) k8s(std::string(kPolicyClusterLabel), ep.cluster);
  return out;
}

}  // namespace meshgate::identity
