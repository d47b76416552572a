// `meshgate bench link`: forwarding through real memif links, meshgate
// beside dpdk-testpmd io forwarding on the same links in the same run.
//
// This process is the generator and the sink: two memif server ports on
// the main lcore (core 0). The forwarder, on core 1, connects to them as a
// client: first meshgate's Instance (two endpoint ports, frontend -> myapp,
// full pipeline with conntrack and policy), then dpdk-testpmd
// --forward-mode=io as a separate process. Mpps = packets received by the
// sink / seconds.
#pragma once

#include <string>
#include <vector>

#include "classifier/bench_classify.h"  // BenchResult

namespace meshgate::dataplane {

struct LinkBenchOptions {
  double seconds = 3;
  std::string socket_a, socket_b;  // memif control sockets (the CLI makes them)
  // Port names as given to EAL (--vdev): the generator's servers and the
  // in-process forwarder's clients.
  std::string server_a = "net_memif0", server_b = "net_memif1";
  std::string client_a = "net_memif2", client_b = "net_memif3";
  std::string testpmd = "/usr/bin/dpdk-testpmd";  // empty: skip the baseline
  std::vector<std::string> testpmd_eal;            // memory/prefix arguments for testpmd
  bool progress = true;
};

std::vector<classifier::BenchResult> RunLinkBench(const LinkBenchOptions& o);

}  // namespace meshgate::dataplane
