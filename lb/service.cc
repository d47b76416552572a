#include "lb/service.h"

#include "absl/strings/ascii.h"

namespace meshgate::lb {
namespace {
const std::string* Find(const std::map<std::string, std::string>& a, const char* k1,
                        const char* k2) {
  if (auto it = a.find(k1); it != a.end()) return &it->second;
  if (auto it = a.find(k2); it != a.end()) return &it->second;
  return nullptr;
}
}  // namespace

std::string_view AffinityName(Affinity a) {
  switch (a) {
    case Affinity::kLocal: return "local";
    case Affinity::kRemote: return "remote";
    default: return "none";
  }
}

GlobalServiceConfig ParseGlobalAnnotations(const std::map<std::string, std::string>& a) {
  GlobalServiceConfig c;
  if (auto v = Find(a, "service.cilium.io/global", "io.cilium/global-service")) {
    c.global = absl::AsciiStrToLower(*v) == "true";
  }
  if (!c.global) return c;
  c.shared = true;
  if (auto v = Find(a, "service.cilium.io/shared", "io.cilium/shared-service")) {
    c.shared = absl::AsciiStrToLower(*v) == "true";
  }
  if (auto v = Find(a, "service.cilium.io/affinity", "io.cilium/service-affinity")) {
    auto l = absl::AsciiStrToLower(*v);
    c.affinity = l == "local" ? Affinity::kLocal : l == "remote" ? Affinity::kRemote
                                                                 : Affinity::kNone;
  }
  return c;
}

}  // namespace meshgate::lb
