// Numeric security identities: reserved ids, scopes and cluster ranges.
//
// Layout from Cilium pkg/identity/numericidentity.go and
// pkg/clustermesh/types/types.go (GetClusterIDShift, MinimalAllocationIdentity):
//   - scope in the top 8 bits: global 0x00, local (CIDR) 1<<24, remote-node 2<<24;
//   - wire identities are 24 bits; the cluster id takes the top 8 bits of
//     those (255 clusters) or 9 bits (511 clusters), so cluster C allocates
//     from C<<16 (or C<<15);
//   - cluster 0 allocates from 256 to 65535.
// Pure, header-only, constexpr.
#pragma once

#include <cstdint>
#include <string_view>

namespace meshgate::identity {

using NumericIdentity = uint32_t;

namespace reserved {
inline constexpr NumericIdentity kUnknown = 0;  // "any identity" in policy maps
inline constexpr NumericIdentity kHost = 1;
inline constexpr NumericIdentity kWorld = 2;
inline constexpr NumericIdentity kUnmanaged = 3;
inline constexpr NumericIdentity kHealth = 4;
inline constexpr NumericIdentity kInit = 5;
inline constexpr NumericIdentity kRemoteNode = 6;
inline constexpr NumericIdentity kKubeApiserver = 7;
inline constexpr NumericIdentity kIngress = 8;
inline constexpr NumericIdentity kWorldIpv4 = 9;
inline constexpr NumericIdentity kWorldIpv6 = 10;
inline constexpr NumericIdentity kMaxReserved = 10;
}  // namespace reserved

// Name of a reserved identity ("host", "world", ...) or "" if not reserved.
constexpr std::string_view ReservedName(NumericIdentity id) {
  constexpr std::string_view kNames[] = {
      "unknown", "host",          "world",   "unmanaged",  "health",    "init",
      "remote-node", "kube-apiserver", "ingress", "world-ipv4", "world-ipv6"};
  return id <= reserved::kMaxReserved ? kNames[id] : std::string_view();
}

inline constexpr NumericIdentity kMinimalNumericIdentity = 256;
inline constexpr NumericIdentity kMinUserReserved = 128;
inline constexpr NumericIdentity kMaxUserReserved = 255;
inline constexpr NumericIdentity kScopeMask = 0xFF000000u;
inline constexpr NumericIdentity kScopeGlobal = 0;
inline constexpr NumericIdentity kScopeLocal = 1u << 24;
inline constexpr NumericIdentity kScopeRemoteNode = 2u << 24;
inline constexpr NumericIdentity kWireMask = 0x00FFFFFFu;

constexpr bool IsReserved(NumericIdentity id) { return id < kMinimalNumericIdentity; }
constexpr bool IsLocalScope(NumericIdentity id) {
  return (id & kScopeMask) == kScopeLocal;
}

// How many clusters a mesh can connect: 255 (default) or 511, and the
// derived identity layout. Must be the same in every cluster of a mesh.
struct ClusterLayout {
  uint32_t max_connected_clusters = 255;

  constexpr uint32_t cluster_bits() const {
    return max_connected_clusters == 511 ? 9 : 8;
  }
  constexpr uint32_t shift() const { return 24 - cluster_bits(); }
  constexpr uint32_t cluster_id_max() const { return max_connected_clusters; }
  constexpr bool Valid() const {
    return max_connected_clusters == 255 || max_connected_clusters == 511;
  }
  // First and last identity cluster `c` allocates (cluster 0: 256..65535).
  constexpr NumericIdentity MinId(uint32_t c) const {
    return c == 0 ? kMinimalNumericIdentity : c << shift();
  }
  constexpr NumericIdentity MaxId(uint32_t c) const {
    return c == 0 ? (1u << shift()) - 1 : ((c + 1) << shift()) - 1;
  }
  constexpr uint32_t ClusterOf(NumericIdentity id) const {
    return (id >> shift()) & cluster_id_max();
  }
  // Cilium accepts remote ipcache entries only for ids in the sender's range
  // or below 256 (pkg/ipcache/kvstore.go).
  constexpr bool AcceptFromCluster(NumericIdentity id, uint32_t c) const {
    return id < kMinimalNumericIdentity || (id >= MinId(c) && id <= MaxId(c));
  }
};

}  // namespace meshgate::identity
