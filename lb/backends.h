// Which backends a service uses: Cilium's global-service merge, affinity and
// backend states. Pure, no DPDK. Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lb/service.h"

namespace meshgate::lb {

// Backend states, Cilium pkg/loadbalancer (BackendState).
enum class BackendState : uint8_t {
  kActive,
  kTerminating,
  kTerminatingNotServing,
  kQuarantined,
  kMaintenance,
};
std::string_view BackendStateName(BackendState s);

struct BackendInfo {
  bool remote = false;  // from another cluster (Cilium: source ClusterMesh)
  BackendState state = BackendState::kActive;
  bool unhealthy = false;
};

// Whether this cluster uses another cluster's backends of a same-named
// service: both mark it global and the exporting one is shared
// (Documentation/network/clustermesh/global-services.rst).
bool UsesRemoteBackends(const GlobalServiceConfig& local, const GlobalServiceConfig& remote);

// Cilium pkg/clustermesh/selectbackends.go SelectBackends: indices of the
// backends a global service selects given its affinity.
//   not global: local only;  affinity none: all;
//   local: local always (even unhealthy), remote only when no local backend
//          is active and healthy and some remote one is healthy;
//   remote: remote always, local only when no remote backend is healthy and
//           some local one is.
// "Healthy" = Active or Terminating, and not unhealthy.
std::vector<size_t> SelectBackends(const std::vector<BackendInfo>& backends,
                                   const GlobalServiceConfig& cfg);

// Of the selected backends, those that receive new connections (Cilium
// pkg/loadbalancer/reconciler/bpf_reconciler.go): the active, healthy ones;
// if there are none, the terminating ones (KEP-1669 fallback). Maintenance,
// quarantined (or unhealthy) and terminating-not-serving ones never do.
std::vector<size_t> ServingBackends(const std::vector<BackendInfo>& backends,
                                    const std::vector<size_t>& selected);

}  // namespace meshgate::lb
