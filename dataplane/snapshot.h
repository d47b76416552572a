// The immutable state a worker reads once per burst: policy tables, local
// endpoints, the instance's router MAC and fabric, and a reference to the
// long-lived ipcache table (which changes in place, without a snapshot).
//
// Built off to the side by control (BuildSnapshot), published through an
// RcuCell, freed after a grace period (docs/design/snapshots.md). Workers see
// only flat POD tables here: no strings, no maps, no protobuf.
#pragma once

#include <rte_ether.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/acl_table.h"
#include "classifier/compile.h"
#include "identity/address.h"
#include "dataplane/ipcache_table.h"
#include "dataplane/service_table.h"
#include "identity/ipcache.h"

namespace meshgate::dataplane {

inline constexpr uint16_t kMaxPorts = 32;

enum class PortRole : uint8_t { kNone = 0, kEndpoint, kFabric, kUplink };
enum class Encap : uint8_t { kVxlan, kGeneve };

// Cilium's tunnel ports (Documentation/network/concepts/routing.rst).
inline constexpr uint16_t kVxlanPort = 8472;
inline constexpr uint16_t kGenevePort = 6081;

// The underlay: this node's address on the fabric and how peers are reached.
struct FabricConfig {
  uint16_t port = 0xffff;         // the fabric port; 0xffff = none
  Encap encap = Encap::kVxlan;
  uint32_t node_v4 = 0;           // this node's underlay address (host order)
  rte_ether_addr node_mac{};
  // Underlay next hops: peer node address -> MAC. Peers not listed get the
  // broadcast MAC (a point-to-point fabric link needs nothing else).
  std::vector<std::pair<uint32_t, rte_ether_addr>> neighbors;
};

// The way out of the mesh: the port, and the next hop's MAC.
struct UplinkConfig {
  uint16_t port = 0xffff;  // 0xffff = none
  rte_ether_addr mac{};
  rte_ether_addr gateway_mac{};
};

struct EndpointEntry {
  uint16_t port = 0;
  rte_ether_addr mac{};
  uint32_t identity = 0;
  uint32_t subject_class = 0;
  uint32_t v4 = 0;  // host order; 0 = none
  std::array<uint8_t, 16> v6{};
  bool has_v6 = false;
  // A frame's Ethernet addresses on its way to this endpoint: the
  // endpoint's MAC, then the router's (Snapshot::router_mac), copied in
  // one step by the rewrite.
  std::array<uint8_t, 12> l2_to{};
};

struct Snapshot {
  Snapshot() { endpoint_of_port.fill(kNoEndpoint); }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  uint64_t generation = 0;
  // Shared by consecutive snapshots compiled to the same rules; freed with
  // the last of them (after its grace period).
  std::shared_ptr<const classifier::AclTable> acl;
  std::unique_ptr<classifier::IdentityClassTable> classes;
  const IpcacheTable* ipcache = nullptr;        // not owned; outlives every snapshot
  std::unique_ptr<ServiceTable> services;        // null: no services
  std::vector<EndpointEntry> endpoints;
  std::array<uint16_t, kMaxPorts> endpoint_of_port;  // port -> endpoint index
  std::array<PortRole, kMaxPorts> role{};
  rte_ether_addr router_mac{};
  FabricConfig fabric;
  UplinkConfig uplink;
};

// A local endpoint: the i-th one must be the i-th of the CompileInput that
// produced `policy` (subject classes are looked up by position).
struct SnapshotEndpoint {
  uint16_t port = 0;
  rte_ether_addr mac{};
  uint32_t identity = 0;
  std::vector<identity::IpAddr> addrs;
};

struct SnapshotInput {
  uint64_t generation = 0;
  const classifier::CompiledPolicy* policy = nullptr;
  const IpcacheTable* ipcache = nullptr;
  std::vector<ServiceSpec> services;
  std::vector<SnapshotEndpoint> endpoints;
  rte_ether_addr router_mac{};
  FabricConfig fabric;
  UplinkConfig uplink;
  // The current snapshot's ACL: reused when `policy` compiled to the same
  // rules (AclTable::SameRules), else a new one is built on it (only the
  // partitions whose rules changed get a new rte_acl context).
  std::shared_ptr<const classifier::AclTable> previous_acl;
};

// Builds a snapshot: the ACL (or the previous one, unchanged),
// the identity class table and the endpoint table. Control thread; not
// thread-safe (rte_acl build).
absl::StatusOr<std::unique_ptr<Snapshot>> BuildSnapshot(const SnapshotInput& in);

// The route of a mesh ipcache entry (remote when it has an IPv4 tunnel
// endpoint).
Route RouteOf(const identity::IpCacheEntry& e);

// Makes `table` hold exactly the model's entries (remote ones with their
// tunnel endpoint) plus a host route to each local endpoint's port, changing
// only what differs. Control thread.
absl::Status SyncIpcache(IpcacheTable& table, const identity::IpCache& model,
                         const std::vector<SnapshotEndpoint>& local);

}  // namespace meshgate::dataplane
