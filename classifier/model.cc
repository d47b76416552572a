#include "classifier/model.h"

#include "identity/strutil.h"

namespace meshgate::classifier {

std::string_view PolicyKindName(PolicyKind k) {
  switch (k) {
    case PolicyKind::kCiliumNetworkPolicy: return "CiliumNetworkPolicy";
    case PolicyKind::kCiliumClusterwideNetworkPolicy:
      return "CiliumClusterwideNetworkPolicy";
    case PolicyKind::kNetworkPolicy: return "NetworkPolicy";
  }
  return "?";
}

std::string_view DirectionName(Direction d) {
  return d == Direction::kIngress ? "ingress" : "egress";
}

bool Rule::DefaultDeny(Direction d) const {
  const auto& dd = d == Direction::kIngress ? default_deny_ingress : default_deny_egress;
  bool has = !Allow(d).empty() || !Deny(d).empty();
  return has && dd.value_or(true);
}

std::string Policy::Id() const {
  if (ns.empty()) return meshgate::StrCat(PolicyKindName(kind), " ", name);
  return meshgate::StrCat(PolicyKindName(kind), " ", ns, "/", name);
}

}  // namespace meshgate::classifier
