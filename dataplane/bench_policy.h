// Synthetic policies and pods shared by the benchmarks: rule i lets
// app=client-(i % 1000) reach app=svc-(i % 16) on TCP port base + i / 1000
// (one policy per service), so the rule count grows without new selectors
// beyond 1,000 and every identity of a selector joins one peer class.
// Benchmarks only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classifier/model.h"
#include "identity/endpoint.h"
#include "identity/labels.h"
#include "identity/strutil.h"

namespace meshgate::dataplane {

inline constexpr uint32_t kClientSelectors = 1000, kServices = 16;

inline identity::Labels Pod(const std::string& app, uint32_t cluster, uint32_t salt) {
  identity::EndpointSpec ep;
  ep.labels["app"] = app;
  if (salt != 0) ep.labels["pod-template-hash"] = meshgate::StrCat(salt);
  ep.cluster = meshgate::StrCat("cluster", cluster);
  return identity::IdentityLabels(ep);
}

// Rule i: app=svc-(i%16) accepts app=client-(i%1000) on TCP (base + i/1000),
// in one CiliumNetworkPolicy per service ("bench-svc-K", as users write
// them: one per application). The rules of service `changed` (if any) use
// `changed_base` instead of `base_port`: a change to one policy of 16.
inline std::vector<classifier::Policy> Policies(uint32_t rules, uint16_t base_port,
                                                int changed = -1, uint16_t changed_base = 0) {
  using identity::Requirement;
  using identity::SelectorOp;
  std::vector<classifier::Policy> ps(kServices);
  for (uint32_t k = 0; k < kServices; ++k) {
    ps[k].name = meshgate::StrCat("bench-svc-", k);
    ps[k].ns = "default";
  }
  for (uint32_t i = 0; i < rules; ++i) {
    const uint32_t svc = i % kServices;
    classifier::Rule r;
    r.subject = classifier::Selector({Requirement::Make(
        "app", SelectorOp::kIn, {meshgate::StrCat("svc-", svc)})});
    classifier::PeerRule pr;
    pr.l3_present = pr.l4_present = true;
    pr.peers.push_back(classifier::Selector({Requirement::Make(
        "app", SelectorOp::kIn, {meshgate::StrCat("client-", i % kClientSelectors)})}));
    uint16_t port = uint16_t((int(svc) == changed ? changed_base : base_port) + i / kClientSelectors);
    pr.ports.push_back({identity::kProtoTcp, port, port, ""});
    r.ingress.push_back(std::move(pr));
    r.has_ingress = true;
    ps[svc].rules.push_back(std::move(r));
  }
  return ps;
}

}  // namespace meshgate::dataplane
