// The agent: one instance's control state and the action functions every
// source ends in (the mesh feed socket, meshgatectl, the scenario runner).
//
// It applies mesh feed updates (control/proto/mesh.proto) after validating
// them as Cilium validates remote data, and on Commit compiles policy,
// brings the ipcache table in line, merges global services and publishes one
// new snapshot to its Instance. An update that is refused changes nothing;
// a Commit that fails leaves the last published snapshot in force.
//
// Thread-safety: one control thread.
#pragma once

#include <rte_ether.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "classifier/compile.h"
#include "classifier/model.h"
#include "control/proto/mesh.pb.h"
#include "dataplane/instance.h"
#include "dataplane/snapshot.h"
#include "identity/ipcache.h"
#include "identity/registry.h"
#include "lb/service.h"

namespace meshgate::control {

struct AgentConfig {
  std::string cluster = "default";
  uint32_t cluster_id = 0;
  rte_ether_addr router_mac{};
  int fabric_port = -1;   // index into the instance's ports; -1 = none
  dataplane::Encap encap = dataplane::Encap::kVxlan;
  uint32_t node_v4 = 0;   // this node's underlay address (host order)
  rte_ether_addr node_mac{};
  int uplink_port = -1;   // index into the instance's ports; -1 = none
  rte_ether_addr uplink_mac{}, gateway_mac{};
};

// What the agent has, for reports and `meshgatectl get`.
struct AgentCounts {
  size_t identities = 0, ipcache = 0, endpoints = 0, policies = 0, services = 0,
         frontends = 0;
  uint64_t generation = 0, revision = 0;
  uint64_t in_place = 0;  // identity and ipcache updates applied without a new snapshot
  bool synced = false;
};

// Who is speaking on one feed connection (set by its hello).
struct FeedSender {
  uint32_t cluster_id = 0;  // 0 = a mesh-wide controller
  bool hello = false;
  uint64_t revision = 0;    // the last one applied from this sender
  // What this sender puts in place stays through the feed's resyncs (the
  // daemon's own config endpoints).
  bool persistent = false;
};

// A local endpoint as the agent holds it.
struct AgentEndpoint {
  std::string ns, name;
  uint32_t identity = 0;
  std::vector<identity::IpAddr> addrs;
  uint16_t port_index = 0;
  rte_ether_addr mac{};
  std::vector<identity::NamedPort> named_ports;
};

class Agent {
 public:
  Agent(AgentConfig config, dataplane::Instance& instance);

  // Applies one update (staged until Commit). Refused updates change
  // nothing and say why. A connection's hello sets `from`: cluster id 0 = a
  // mesh-wide controller, else identities and ipcache entries must lie in
  // that cluster's range (Cilium pkg/ipcache/kvstore.go).
  absl::Status Apply(const mesh::v1::Update& u) { return Apply(u, local_sender_); }
  absl::Status Apply(const mesh::v1::Update& u, FeedSender& from);
  // Applies what changed since the last Commit. Identities that join an
  // existing peer class (or none) and ipcache entries without named ports
  // go into the published snapshot's lock-free tables in place
  // (architecture.md invariant 1: no compile, no snapshot, no ACL
  // rebuild); anything else compiles and publishes a snapshot. A policy
  // change compiles from the previous compilation and builds only the ACL
  // partitions whose rules changed (classifier/acl_table.h), so it is in
  // force in tens of milliseconds; classification then uses a context per
  // changed partition beside the consolidated one.
  absl::Status Commit();
  // Off: every change compiles and publishes (`bench updates`' baseline).
  void set_in_place_updates(bool on) { in_place_updates_ = on; }
  // Whether the published ACL classifies with more than one context (after
  // a partial rebuild), and a snapshot that merges them back into one
  // (same verdicts; for the control loop's idle time, as it compiles and
  // builds everything again). Consolidate does nothing when there is
  // nothing to merge.
  bool NeedsConsolidation() const { return acl_ != nullptr && acl_->num_contexts() > 1; }
  absl::Status Consolidate();

  const AgentConfig& config() const { return config_; }
  AgentCounts Counts() const;
  const identity::Registry& identities() const { return reg_; }
  const identity::IpCache& ipcache() const { return ipcache_; }
  const std::vector<classifier::Policy>& policies() const { return policies_; }
  const std::vector<dataplane::ServiceSpec>& service_specs() const { return specs_; }
  const std::vector<lb::Service>& services() const { return services_; }
  const std::map<std::string, AgentEndpoint>& endpoints() const { return endpoints_; }
  // The policy of the last Commit (null before the first).
  const classifier::CompiledPolicy* compiled() const { return compiled_.get(); }
  // The published snapshot's ACL (tests: whether a change rebuilt it).
  const classifier::AclTable* acl() const { return acl_.get(); }
  const classifier::CompileOptions& options() const { return opts_; }

 private:
  using LocalEp = AgentEndpoint;
  using SvcKey = std::tuple<std::string, std::string, std::string>;  // cluster, ns, name

  absl::Status ApplyManifest(const mesh::v1::ManifestApply& m);
  absl::Status ApplyIdentity(const mesh::v1::IdentityUpsert& m, uint32_t sender);
  absl::Status ApplyIpcache(const mesh::v1::IpcacheUpsert& m, uint32_t sender);
  absl::Status ApplyEndpoint(const mesh::v1::EndpointAttach& m);
  absl::Status ApplyService(const mesh::v1::ClusterServiceUpsert& m);
  absl::Status ApplyConfig(const mesh::v1::ClusterConfig& m);
  void EndSync();
  std::vector<dataplane::ServiceSpec> BuildServices() const;

  AgentConfig config_;
  dataplane::Instance& inst_;
  FeedSender local_sender_;  // the operator and in-process callers
  uint64_t revision_ = 0, generation_ = 0;
  bool dirty_ = true;
  bool consolidate_ = false;  // Commit builds the ACL without the previous one
  // Since the last Commit: whether anything but identities and plain
  // ipcache entries changed (then Commit compiles and publishes a
  // snapshot), and which identities and prefixes changed (else Commit
  // writes them into the published snapshot's tables in place).
  bool full_commit_ = true;
  std::set<uint32_t> changed_ids_;
  std::set<identity::Prefix> changed_prefixes_;
  uint64_t in_place_ = 0;
  bool in_place_updates_ = true;
  bool ApplyInPlace();

  classifier::CompileOptions opts_;
  bool policy_default_local_cluster_ = false;
  identity::Registry reg_;
  identity::IpCache ipcache_;
  std::map<std::string, LocalEp> endpoints_;  // "ns/name"
  std::vector<classifier::Policy> policies_;
  std::vector<lb::Service> services_;         // this cluster's Service objects
  std::map<SvcKey, mesh::v1::ClusterServiceUpsert> cluster_services_;
  std::vector<mesh::v1::Update> manifest_log_;  // applies and deletes, in order

  // Resync: what was re-sent since SyncStart.
  bool syncing_ = false, synced_ = false;
  std::set<uint32_t> seen_ids_;
  std::set<identity::Prefix> seen_prefixes_;
  std::set<SvcKey> seen_services_;
  std::set<std::string> seen_endpoints_;
  // Put in place by persistent senders: never removed by a resync.
  std::set<uint32_t> pinned_ids_;
  std::set<identity::Prefix> pinned_prefixes_;
  std::set<std::string> pinned_endpoints_;

  std::unique_ptr<classifier::CompiledPolicy> compiled_;
  // The published snapshot's ACL: the next snapshot reuses it when its
  // rules compile the same (a service or endpoint change, no rebuild).
  std::shared_ptr<const classifier::AclTable> acl_;
  std::vector<dataplane::ServiceSpec> specs_;
};

}  // namespace meshgate::control
