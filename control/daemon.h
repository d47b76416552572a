// `meshgate run --config FILE`: one cluster's meshgate as a daemon. The EAL,
// one Instance (ports from device strings, worker lcores), one Agent, and a
// Boost.Asio control thread (the EAL main lcore) that serves
//   - the mesh feed (control/proto/mesh.proto) on a Unix socket (and on
//     loopback TCP when asked),
//   - the admin API for meshgatectl (control/proto/admin.proto) on a Unix
//     socket,
//   - Prometheus metrics over HTTP (Boost.Beast) when an address is given,
//   - DPDK telemetry commands under /meshgate/,
// and stops cleanly on SIGINT/SIGTERM. See docs/daemon.md.
#pragma once

#include <rte_ether.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/scenario.h"
#include "dataplane/instance.h"
#include "dataplane/snapshot.h"

namespace meshgate::control {

struct DaemonPort {
  std::string device;
  dataplane::PortRole role = dataplane::PortRole::kEndpoint;
};

// An endpoint the config puts in place itself (a standalone daemon, or VMs
// known only to this host). Its identity is allocated here, from the top of
// the cluster's range (the mesh controller allocates from the bottom).
struct DaemonEndpoint {
  ScenarioEndpoint spec;
  uint16_t port = 0;
  rte_ether_addr mac{};
};

struct DaemonConfig {
  std::string file;
  std::string cluster;
  uint32_t cluster_id = 0;
  ScenarioOptions options;
  std::vector<unsigned> lcores = {1};  // worker lcores; the main lcore (0) is control
  std::vector<int> lcore_cpus;         // per worker lcore: its CPU ("L@CPU"); -1 or absent: CPU L
  uint32_t idle_sleep_us = 0;
  std::vector<DaemonPort> ports;
  std::vector<DaemonEndpoint> endpoints;
  rte_ether_addr router_mac{};
  uint32_t node_v4 = 0;  // underlay address (host order)
  rte_ether_addr node_mac{};
  dataplane::Encap encap = dataplane::Encap::kVxlan;
  rte_ether_addr uplink_mac{}, gateway_mac{};
  uint32_t conntrack_size = 1 << 16;
  std::string feed_socket = "/run/meshgate/feed.sock";
  std::string admin_socket = "/run/meshgate/admin.sock";
  unsigned socket_mode = 0600;
  bool feed_tcp = false;
  std::string feed_tcp_address = "127.0.0.1";
  uint16_t feed_tcp_port = 4250;
  std::string metrics;  // "127.0.0.1:9962"; empty = off
  size_t max_frame = 4u << 20;
  bool capture = false;  // rte_pdump: dpdk-dumpcap --file-prefix meshgate-<cluster>-<pid>
  std::vector<std::string> eal;  // extra EAL arguments
};

// Parses and validates a daemon config; errors carry FILE:LINE.
absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path);

// Runs until SIGINT/SIGTERM. Returns the process exit code; start-up errors
// are printed (to stderr) with what to do about them.
int RunDaemon(const DaemonConfig& c);

}  // namespace meshgate::control
