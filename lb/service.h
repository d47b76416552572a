// Kubernetes Services as Cilium's load balancer sees them (model only; the
// global merge, affinity selection, Maglev and the datapath come with the
// global-services work).
//
// Annotations follow Cilium pkg/annotation/k8s.go (cilium-semantics.md §5.1):
// service.cilium.io/global (alias io.cilium/global-service) compared
// case-insensitively to "true"; service.cilium.io/shared (alias
// io.cilium/shared-service), ignored unless global, default true;
// service.cilium.io/affinity (alias io.cilium/service-affinity), ignored
// unless global, lower-cased, anything but local/remote is none.
// Pure, no DPDK, no YAML. Thread-safety: value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "identity/address.h"

namespace meshgate::lb {

enum class Affinity : uint8_t { kNone, kLocal, kRemote };
std::string_view AffinityName(Affinity a);

struct GlobalServiceConfig {
  bool global = false;  // includeExternal
  bool shared = false;
  Affinity affinity = Affinity::kNone;
};
GlobalServiceConfig ParseGlobalAnnotations(const std::map<std::string, std::string>& a);

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint8_t proto = 6;
  uint16_t target_port = 0;        // 0 with target_port_name set: named
  std::string target_port_name;
  uint16_t node_port = 0;
};

struct Service {
  std::string ns = "default";
  std::string name;
  std::string type = "ClusterIP";
  std::vector<identity::IpAddr> frontends;  // clusterIPs, LB ingress, externalIPs
  // The frontends that are cluster IPs (reachable east-west only). Cilium
  // uses Maglev only for north-south frontends (pkg/loadbalancer/reconciler
  // useMaglev: NodePort, LoadBalancer, externalIPs, HostPort; ClusterIP only
  // with bpf-lb-external-clusterip): cluster IPs select at random.
  std::vector<identity::IpAddr> cluster_ips;
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  std::map<std::string, std::string> annotations;
  GlobalServiceConfig global;
  bool session_affinity_client_ip = false;
  uint32_t session_affinity_timeout_s = 10800;  // Kubernetes' default, 3 h
  std::string file;
  int line = 0;
};

}  // namespace meshgate::lb
