#include "lb/backends.h"

namespace meshgate::lb {

std::string_view BackendStateName(BackendState s) {
  switch (s) {
    case BackendState::kActive: return "active";
    case BackendState::kTerminating: return "terminating";
    case BackendState::kTerminatingNotServing: return "terminating-not-serving";
    case BackendState::kQuarantined: return "quarantined";
    case BackendState::kMaintenance: return "maintenance";
  }
  return "?";
}

bool UsesRemoteBackends(const GlobalServiceConfig& local, const GlobalServiceConfig& remote) {
  return local.global && remote.global && remote.shared;
}

std::vector<size_t> SelectBackends(const std::vector<BackendInfo>& b,
                                   const GlobalServiceConfig& cfg) {
  bool use_local = true, use_remote = false;
  if (!cfg.global) {
    use_remote = false;
  } else if (cfg.affinity == Affinity::kNone) {
    use_remote = true;
  } else {
    size_t local = 0, remote = 0, local_active = 0;
    for (const auto& x : b) {
      bool healthy = (x.state == BackendState::kActive || x.state == BackendState::kTerminating) &&
                     !x.unhealthy;
      if (!healthy) continue;
      if (x.remote) {
        ++remote;
      } else {
        ++local;
        if (x.state == BackendState::kActive) ++local_active;
      }
    }
    if (cfg.affinity == Affinity::kLocal) {
      use_local = true;
      use_remote = local_active == 0 && remote > 0;
    } else {
      use_remote = true;
      use_local = remote == 0 && local > 0;
    }
  }
  std::vector<size_t> out;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i].remote ? use_remote : use_local) out.push_back(i);
  }
  return out;
}

std::vector<size_t> ServingBackends(const std::vector<BackendInfo>& b,
                                    const std::vector<size_t>& selected) {
  std::vector<size_t> active, terminating;
  for (size_t i : selected) {
    if (b[i].unhealthy) continue;  // an unhealthy backend counts as quarantined
    if (b[i].state == BackendState::kActive) active.push_back(i);
    else if (b[i].state == BackendState::kTerminating) terminating.push_back(i);
  }
  return active.empty() ? terminating : active;
}

}  // namespace meshgate::lb
