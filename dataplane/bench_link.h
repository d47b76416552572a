// `meshgate bench link`: forwarding through real memif links, meshgate
// beside dpdk-testpmd io forwarding on the same kind of links, the same
// lcore, in the same run.
//
// This process is the generator and the sink: four memif server ports on
// the main lcore (core 0), two for each forwarder. The forwarders, on core
// 1, connect to them as clients: meshgate's Instance (two endpoint ports,
// frontend -> myapp, full pipeline with conntrack and policy; for the
// fabric profile the first is its fabric port, frontend remote) in this
// process, dpdk-testpmd --forward-mode=io as a separate process. They take
// turns (`rounds`: meshgate, then testpmd, each for seconds / rounds; the
// one not measured is stopped: Instance::Stop, SIGSTOP), so that the ratio
// of each round compares neighbouring seconds of a machine whose speed
// drifts. Mpps = packets received by the sink / seconds.
//
// Each round also forwards on meshgate's own two ports with no pipeline,
// between meshgate's and testpmd's turns (same links, pool, descriptors and
// lcore): io (packets untouched, as testpmd's io mode) and mac (both MAC
// addresses rewritten, as l2fwd). io against testpmd says whether
// meshgate's port set-up costs what testpmd's does; mac against testpmd is
// what the least per-packet work scores on this link. (Not for deny: the
// sink sees nothing of meshgate's.)
//
// Busy cycles (poll iterations that received packets, RX to TX) per packet
// are each forwarder's cost whatever the generator offers: meshgate's less
// io's is the pipeline's own cost on the link, io's over meshgate's the
// capacity ratio. The generator counts what each forwarder's full ring
// refused: a forwarder that is not refused kept up, and its rate is the
// generator's (docs/benchmarks.md, "What bounds the link's rate").
#pragma once

#include <string>
#include <vector>

#include "classifier/bench_classify.h"  // BenchResult

namespace meshgate::dataplane {

// Traffic profiles (frontend -> myapp on the two links):
//   established  UDP over `flows` connections, revisited (conntrack hits)
//   new-conn     TCP SYNs, every one a new connection (conntrack inserts)
//   deny         UDP that myapp's policy denies (all dropped at ingress:
//                Mpps counts what meshgate processed)
//   service      UDP to a service frontend, DNAT to myapp, over `flows`
//   ipv6         UDP over IPv6, over `flows`
//   fabric       the established frames in VXLAN from a peer node (frontend
//                a pod of cluster 2, its identity in the VNI): client_a is
//                meshgate's fabric port, decapsulation, ingress policy,
//                delivery to myapp
// `rules` synthetic rules (bench_policy.h) sit in the ACL beside the one that
// allows the traffic.
inline constexpr const char* kLinkProfiles[] = {"established", "new-conn", "deny", "service", "ipv6",
                                                "fabric"};

struct LinkBenchOptions {
  double seconds = 3;
  std::string profile = "established";
  uint32_t flows = 3073;
  uint32_t rules = 0;
  uint32_t rounds = 3;  // new-conn: 1 (the table fills within it)
  // memif control sockets (the CLI makes them): a, b meshgate's; c, d testpmd's.
  std::string socket_a, socket_b, socket_c, socket_d;
  // Port names as given to EAL (--vdev): the generator's servers and the
  // in-process forwarder's clients.
  std::string server_a = "net_memif0", server_b = "net_memif1";
  std::string client_a = "net_memif2", client_b = "net_memif3";
  std::string server_c = "net_memif4", server_d = "net_memif5";
  std::string testpmd = "/usr/bin/dpdk-testpmd";  // empty: skip the baseline
  std::vector<std::string> testpmd_eal;            // memory/prefix arguments for testpmd
  bool progress = true;
};

std::vector<classifier::BenchResult> RunLinkBench(const LinkBenchOptions& o);

}  // namespace meshgate::dataplane
