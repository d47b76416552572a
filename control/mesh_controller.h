// The mesh controller: what Kubernetes and the clustermesh-apiserver would
// tell each cluster's meshgate. It allocates identities per cluster (cluster
// C from C<<16, as Cilium), lists Service backends the way the Kubernetes
// endpoint controller does (endpoints in the Service's namespace whose labels
// match spec.selector; the service port maps to targetPort), exports global
// Services to the other clusters, and turns all of it into mesh feed frames
// per cluster: hello, the cluster's options and a full sync the first time,
// then only what changed (upserts, and deletes of what went away).
//
// Used in-process by `meshgate simulate` and over sockets by `meshgate mesh`.
// Thread-safety: one thread.
#pragma once

#include <rte_ether.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/proto/mesh.pb.h"
#include "control/scenario.h"
#include "identity/registry.h"
#include "lb/service.h"

namespace meshgate::control {

// The underlay address of a cluster's node (one node per cluster).
constexpr uint32_t NodeV4(uint32_t cluster_id) { return (100u << 24) | (64u << 16) | cluster_id; }

class MeshController {
 public:
  MeshController(std::vector<ScenarioCluster> clusters, std::vector<ScenarioNamespace> namespaces);

  // Places an endpoint on port `port` of its cluster's instance with `mac`.
  absl::Status AddEndpoint(const ScenarioEndpoint& e, uint16_t port, const rte_ether_addr& mac);
  absl::Status RemoveEndpoint(const std::string& key);  // "cluster/name"
  // A manifest applied to `cluster`: the controller keeps its Services and
  // queues the text for the cluster's agent. Refused (with file:line) when it
  // does not parse.
  absl::Status ApplyManifest(const std::string& cluster, const std::string& yaml,
                             const std::string& file, int line_offset = 0);
  absl::Status DeleteManifest(const std::string& cluster, const std::string& kind,
                              const std::string& ns, const std::string& name);

  // The frames that bring `cluster`'s agent up to date (queued manifests
  // first). After Reset(cluster) (a reconnect) the next call starts over with
  // hello and a full sync.
  std::string Frames(const std::string& cluster);
  void Reset(const std::string& cluster);

  struct Endpoint {
    ScenarioEndpoint spec;
    uint32_t identity = 0;
    uint16_t port = 0;
    rte_ether_addr mac{};
  };
  const std::map<std::string, Endpoint>& endpoints() const { return eps_; }
  const std::vector<lb::Service>& services(const std::string& cluster) const;
  const ScenarioCluster* cluster(const std::string& name) const;
  const std::vector<ScenarioCluster>& clusters() const { return clusters_; }

 private:
  struct Peer {
    bool synced = false;
    uint64_t revision = 0;
    std::map<std::string, std::string> sent;  // key -> serialized update
    std::vector<mesh::v1::Update> queued;     // manifests, in order
  };
  std::map<std::string, mesh::v1::Update> Desired(const std::string& cluster) const;

  std::vector<ScenarioCluster> clusters_;
  std::vector<ScenarioNamespace> namespaces_;
  identity::Registry reg_;
  std::map<std::string, Endpoint> eps_;
  std::map<std::string, std::vector<lb::Service>> services_;
  std::map<std::string, Peer> peers_;
};

}  // namespace meshgate::control
