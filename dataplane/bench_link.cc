#include "dataplane/bench_link.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <array>
#include <cstring>
#include <functional>

#include "dataplane/bench_frames.h"
#include "dataplane/bench_policy.h"
#include "dataplane/instance.h"
#include "identity/endpoint.h"
#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {

using classifier::BenchResult;
using classifier::Median;

std::string Fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.*f", digits, v);
  return b;
}

bool PortId(const std::string& name, uint16_t* id) {
  return rte_eth_dev_get_port_by_name(name.c_str(), id) == 0;
}

bool SetupPort(uint16_t id, rte_mempool* pool) {
  rte_eth_conf conf{};
  return rte_eth_dev_configure(id, 1, 1, &conf) == 0 &&
         rte_eth_rx_queue_setup(id, 0, 1024, SOCKET_ID_ANY, nullptr, pool) == 0 &&
         rte_eth_tx_queue_setup(id, 0, 1024, SOCKET_ID_ANY, nullptr) == 0 &&
         rte_eth_dev_start(id) == 0;
}

bool WaitLinks(uint16_t a, uint16_t b, double seconds) {
  uint64_t end = rte_rdtsc() + uint64_t(seconds * double(rte_get_tsc_hz()));
  while (rte_rdtsc() < end) {
    rte_eth_link la{}, lb{};
    rte_eth_link_get_nowait(a, &la);
    rte_eth_link_get_nowait(b, &lb);
    if (la.link_status == RTE_ETH_LINK_UP && lb.link_status == RTE_ETH_LINK_UP) return true;
    rte_delay_ms(10);
  }
  return false;
}

enum class Profile { kEstablished, kNewConn, kDeny, kService, kIpv6, kFabric };

// What the generator sends: the profile, its connections, and (fabric) the
// VNI, the source identity the peer node's tunnel carries.
struct Traffic {
  Profile prof = Profile::kEstablished;
  uint32_t flows = 0;
  uint32_t vni = 0;
};

// The fabric profile's underlay: the peer node sends to this node's VXLAN
// port (192.168.0.2 -> 192.168.0.1, UDP 8472).
constexpr uint32_t kFabricNode = 0xC0A80001, kFabricPeer = 0xC0A80002;
constexpr uint16_t kMaxFrame = 128;

// One frame of a profile: 60 bytes (IPv6: 78; fabric: the established
// frame in VXLAN, 110), packet number `i`.
uint16_t Frame(uint8_t* p, const Traffic& t, uint64_t i) {
  const Profile prof = t.prof;
  const uint32_t flows = t.flows;
  if (prof == Profile::kFabric) {
    const uint16_t inner =
        Frame(p + kVxlanOuterLen, Traffic{Profile::kEstablished, flows, 0}, i);
    // (UDP source port: per connection, as a node's entropy port.)
    WriteVxlanOuter(p, kFabricPeer, kFabricNode, inner, uint16_t(49152 + i % flows % 16384),
                    t.vni);
    p[0] = 0x02, p[5] = 0xaa;  // to this node
    p[6] = 0x02, p[11] = 0xbb;
    return uint16_t(kVxlanOuterLen + inner);
  }
  bool v6 = prof == Profile::kIpv6;
  bool tcp = prof == Profile::kNewConn;
  uint16_t len = v6 ? 78 : 60;
  std::memset(p, 0, len);
  p[0] = 0x02, p[5] = 0xaa;  // to the router
  p[6] = 0x02, p[11] = 0x01;
  uint16_t sport, dport = 5678;
  if (prof == Profile::kNewConn) {  // 16M distinct connections before a repeat
    sport = uint16_t(1024 + i % 64000);
    dport = uint16_t(5678 + (i / 64000) % 256);
  } else {
    sport = uint16_t(1024 + i % flows);
  }
  uint8_t* l4;
  if (v6) {
    p[12] = 0x86, p[13] = 0xdd;
    auto* ip = reinterpret_cast<rte_ipv6_hdr*>(p + 14);
    ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
    ip->payload_len = rte_cpu_to_be_16(24);
    ip->proto = 17;
    ip->hop_limits = 64;
    ip->src_addr[0] = 0xfd, ip->src_addr[15] = 0x10;
    ip->dst_addr[0] = 0xfd, ip->dst_addr[15] = 0x20;
    l4 = p + 54;
    l4[5] = 24;
  } else {
    p[12] = 0x08;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + 14);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16(46);
    ip->time_to_live = 64;
    ip->next_proto_id = tcp ? 6 : 17;
    ip->src_addr = rte_cpu_to_be_32(0x0a01000a);
    ip->dst_addr = rte_cpu_to_be_32(prof == Profile::kService ? 0x0a600050 : 0x0a010014);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    l4 = p + 34;
    if (prof == Profile::kService) dport = 80;
    if (tcp) {
      l4[12] = 5 << 4;
      l4[13] = 0x02;  // SYN
    } else {
      l4[5] = 26;
    }
  }
  l4[0] = uint8_t(sport >> 8), l4[1] = uint8_t(sport);
  l4[2] = uint8_t(dport >> 8), l4[3] = uint8_t(dport);
  return len;
}

struct Generated {
  uint64_t sent = 0, received = 0;
  double seconds = 0;  // how long it sent
  // Packets offered to tx bursts: a forwarder that falls behind fills its
  // memif ring and the generator's bursts are refused in part.
  uint64_t offered = 0;
  double refused() const { return offered ? 1 - double(sent) / double(offered) : 0; }
};

// Sends on `tx`, counts what arrives on `rx`, for `seconds` or until
// `done()` (checked every 64 bursts) says the run is over.
Generated Generate(uint16_t tx, uint16_t rx, rte_mempool* pool, double seconds, const Traffic& t,
                   const std::function<bool()>& done = {}) {
  uint64_t sent = 0, received = 0, offered = 0, i = 0, bursts = 0;
  rte_mbuf* pkts[32];
  rte_mbuf* in[64];
  const uint64_t start = rte_rdtsc();
  uint64_t end = start + uint64_t(seconds * double(rte_get_tsc_hz()));
  while (rte_rdtsc() < end) {
    if (done && ++bursts % 64 == 0 && done()) {
      end = rte_rdtsc();
      break;
    }
    if (rte_pktmbuf_alloc_bulk(pool, pkts, 32) == 0) {
      for (auto* m : pkts) {
        auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kMaxFrame));
        if (d != nullptr) rte_pktmbuf_trim(m, uint16_t(kMaxFrame - Frame(d, t, i++)));
      }
      uint16_t n = rte_eth_tx_burst(tx, 0, pkts, 32);
      offered += 32;
      sent += n;
      i -= 32 - n;  // unsent packet numbers go again
      if (n < 32) rte_pktmbuf_free_bulk(pkts + n, 32 - n);
    }
    uint16_t r = rte_eth_rx_burst(rx, 0, in, 64);
    received += r;
    if (r) rte_pktmbuf_free_bulk(in, r);
  }
  for (int k = 0; k < 100; ++k) {  // drain what is in flight
    uint16_t r = rte_eth_rx_burst(rx, 0, in, 64);
    received += r;
    if (r) rte_pktmbuf_free_bulk(in, r);
  }
  return {sent, received, double(end - start) / double(rte_get_tsc_hz()), offered};
}

// Plain forwarding on meshgate's own two ports, between its rounds (its
// workers stopped): the same links, pool and descriptors with no pipeline.
// io: as testpmd's io mode, the packets untouched; mac: as l2fwd, each
// packet's two MAC addresses rewritten (the least a forwarder that looks
// at its packets does). Busy cycles are counted as the pipeline counts
// them: TSC cycles of the iterations that received packets, from RX to
// TX. The pipeline's own cost on the link is meshgate's busy cycles per
// packet less io's, measured seconds apart.
struct PlainForward {
  uint16_t a = 0, b = 0;
  bool rewrite = false;
  std::atomic<bool> stop{false};
  uint64_t packets = 0, busy_cycles = 0;  // written by the forwarder, read after it stops
};

int PlainForwardMain(void* arg) {
  auto* f = static_cast<PlainForward*>(arg);
  const rte_ether_addr src{{0x02, 0, 0, 0, 0, 0xaa}}, dst{{0x02, 0, 0, 0, 0, 0x02}};
  rte_mbuf* pkts[32];
  while (!f->stop.load(std::memory_order_relaxed)) {
    const uint64_t start = rte_rdtsc();
    uint32_t got = 0;
    for (auto [from, to] : {std::pair{f->a, f->b}, std::pair{f->b, f->a}}) {
      uint16_t n = rte_eth_rx_burst(from, 0, pkts, 32);
      if (n == 0) continue;
      got += n;
      if (f->rewrite) {
        for (uint16_t i = 0; i < n; ++i) {
          auto* eth = rte_pktmbuf_mtod(pkts[i], rte_ether_hdr*);
          eth->dst_addr = dst;
          eth->src_addr = src;
        }
      }
      uint16_t sent = rte_eth_tx_burst(to, 0, pkts, n);
      if (sent < n) rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
    if (got != 0) {
      f->packets += got;
      f->busy_cycles += rte_rdtsc() - start;
    }
  }
  return 0;
}

}  // namespace

std::vector<BenchResult> RunLinkBench(const LinkBenchOptions& o) {
  std::vector<BenchResult> out;
  auto say = [&](const std::string& s) {
    if (o.progress) std::fprintf(stderr, "bench link: %s\n", s.c_str());
  };
  Profile prof = Profile::kEstablished;
  if (o.profile == "new-conn") prof = Profile::kNewConn;
  else if (o.profile == "deny") prof = Profile::kDeny;
  else if (o.profile == "service") prof = Profile::kService;
  else if (o.profile == "ipv6") prof = Profile::kIpv6;
  else if (o.profile == "fabric") prof = Profile::kFabric;
  else if (o.profile != "established") {
    say("unknown profile " + o.profile);
    return out;
  }
  const std::string tag = meshgate::StrCat(o.profile, o.rules ? meshgate::StrCat("_", o.rules, "rules") : "",
                                           prof == Profile::kNewConn || prof == Profile::kDeny ? "" : meshgate::StrCat("_", o.flows, "flows"));
  uint16_t sa, sb, ca, cb, ta, tb;
  if (!PortId(o.server_a, &sa) || !PortId(o.server_b, &sb) || !PortId(o.client_a, &ca) ||
      !PortId(o.client_b, &cb) || !PortId(o.server_c, &ta) || !PortId(o.server_d, &tb)) {
    say("memif ports missing (the CLI creates them with --vdev)");
    return out;
  }
  unsigned worker = rte_get_next_lcore(-1, 1, 0);
  if (worker >= RTE_MAX_LCORE) {
    say("needs a second lcore (-l 0,1)");
    return out;
  }
  if (!RegisterPacketMeta().ok()) return out;
  rte_mempool* pool = rte_pktmbuf_pool_create("link_gen", 16383, 256, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (pool == nullptr || !SetupPort(sa, pool) || !SetupPort(sb, pool) || !SetupPort(ta, pool) ||
      !SetupPort(tb, pool)) {
    say("cannot set up the generator's ports");
    return out;
  }

// meshgate on lcore `worker`: frontend on client_a, myapp on client_b.
  InstanceConfig cfg;
  cfg.name = "link";
  cfg.ports = {{o.client_a}, {o.client_b}};
  cfg.worker_lcores = {worker};
  cfg.rx_desc = cfg.tx_desc = 1024;
  cfg.mbufs = 16383;
  // new-conn: room for the connections of the run (it ends at 90% full).
  cfg.conntrack_size = prof == Profile::kNewConn ? (1u << 21) : (1u << 16);
  auto in = Instance::Create(cfg);
  if (!in.ok()) {
    say(std::string(in.status().message()));
    return out;
  }
  identity::Registry reg;
  // frontend is client-0 and myapp svc-0 of the synthetic rules; one more
  // rule allows (or, for deny, does not allow) the profile's traffic.
  // (fabric: frontend is a pod of cluster 2 behind the peer node; its
  // identity comes in the VNI.)
  const uint32_t fe_cluster = prof == Profile::kFabric ? 2 : 1;
  uint32_t fe_id = *reg.Allocate(fe_cluster, Pod("client-0", fe_cluster, 0));
  uint32_t my_id = *reg.Allocate(1, Pod("svc-0", 1, 0));
  auto policies = Policies(o.rules, 1000);
  {
    classifier::Rule r;
    r.subject = classifier::Selector({identity::Requirement::Make("app", identity::SelectorOp::kIn, {"svc-0"})});
    classifier::PeerRule pr;
    pr.l3_present = pr.l4_present = true;
    pr.peers.push_back(classifier::Selector({identity::Requirement::Make(
        "app", identity::SelectorOp::kIn, {prof == Profile::kDeny ? "nobody" : "client-0"})}));
    pr.ports.push_back({identity::kProtoUdp, 5678, 5678, ""});
    pr.ports.push_back({identity::kProtoTcp, 5678, 5678 + 255, ""});
    r.ingress.push_back(std::move(pr));
    r.has_ingress = true;
    policies[0].rules.push_back(std::move(r));
  }
  classifier::CompileInput ci;
  ci.policies = &policies;
  ci.identities = &reg;
  ci.endpoints = {{fe_id, {}}, {my_id, {}}};
  if (prof == Profile::kFabric) ci.endpoints.erase(ci.endpoints.begin());  // frontend is remote
  auto cp = classifier::Compile(ci);
  if (!cp.ok()) {
    say(std::string(cp.status().message()));
    return out;
  }
  SnapshotInput si;
  si.policy = &*cp;
  si.ipcache = &(*in)->ipcache();
  si.router_mac = {{0x02, 0, 0, 0, 0, 0xaa}};
  std::array<uint8_t, 16> fe6{}, my6{};
  fe6[0] = my6[0] = 0xfd;
  fe6[15] = 0x10;
  my6[15] = 0x20;
  identity::IpAddr fe_v6, my_v6;
  fe_v6.family = my_v6.family = identity::Family::kIpv6;
  fe_v6.bytes = fe6;
  my_v6.bytes = my6;
  si.endpoints = {{(*in)->port_id(0), {{0x02, 0, 0, 0, 0, 0x01}}, fe_id,
                   {identity::IpAddr::V4(0x0a01000a), fe_v6}},
                  {(*in)->port_id(1), {{0x02, 0, 0, 0, 0, 0x02}}, my_id,
                   {identity::IpAddr::V4(0x0a010014), my_v6}}};
  if (prof == Profile::kFabric) {  // client_a is the fabric port; myapp alone is local
    si.endpoints.erase(si.endpoints.begin());
    si.fabric.port = (*in)->port_id(0);
    si.fabric.node_v4 = kFabricNode;
    si.fabric.node_mac = {{0x02, 0, 0, 0, 0, 0xaa}};
  }
  if (prof == Profile::kService) {
    ServiceSpec svc;
    svc.vip = identity::IpAddr::V4(0x0a600050);
    svc.port = 80;
    svc.proto = identity::kProtoUdp;
    svc.backends = {{identity::IpAddr::V4(0x0a010014), 5678}};
    si.services.push_back(svc);
  }
  identity::IpCache model;
  if (absl::Status st = SyncIpcache((*in)->ipcache(), model, si.endpoints); !st.ok()) {
    say("ipcache: " + std::string(st.message()));
    return out;
  }
  auto snap = BuildSnapshot(si);
  if (!snap.ok()) {
    say("snapshot: " + std::string(snap.status().message()));
    return out;
  }
  (*in)->snapshots().Publish(std::move(*snap));
  if (!(*in)->Start().ok() || !WaitLinks(sa, sb, 10)) {
    say("meshgate: memif links did not come up");
    return out;
  }
  (*in)->Stop();  // its workers run in its rounds only

  // dpdk-testpmd io forwarding on the same lcore, as the client of the
  // other two sockets; stopped (SIGSTOP) outside its rounds, so that one
  // forwarder at a time busy-polls lcore `worker`.
  pid_t pid = -1;
  if (o.testpmd.empty() || access(o.testpmd.c_str(), X_OK) != 0) {
    say("dpdk-testpmd not found: no baseline");
  } else {
    std::vector<std::string> args = {o.testpmd, meshgate::StrCat("--lcores=0@", worker, ",1@", worker),
                                     "--no-pci",
                                     "--vdev=net_memif0,role=client,socket=" + o.socket_c,
                                     "--vdev=net_memif1,role=client,socket=" + o.socket_d};
    args.insert(args.end(), o.testpmd_eal.begin(), o.testpmd_eal.end());
    for (std::string a : {"--", "--forward-mode=io", "--nb-cores=1", "--stats-period=100",
                          "--txd=1024", "--rxd=1024", "--no-lsc-interrupt"}) {
      args.push_back(a);
    }
    pid = fork();
    if (pid == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (pid > 0 && WaitLinks(ta, tb, 20)) {
      kill(pid, SIGSTOP);
    } else {
      say("dpdk-testpmd: memif links did not come up: no baseline");
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      pid = -1;
    }
  }

  // Rounds: meshgate, then testpmd, `rounds` times, each for seconds /
  // rounds; the machine's speed drifts (shared vCPUs), so each ratio is
  // taken between two neighbouring runs and the median reported.
  // New connections: one round (the table fills within it).
  const uint32_t rounds = prof == Profile::kNewConn ? 1 : std::max<uint32_t>(1, o.rounds);
  const Traffic traffic{prof, o.flows, fe_id};
  const double seg = o.seconds / rounds;
  Conntrack& ct = (*in)->conntrack();
  // New connections: the run ends when the table is 90% full (every packet
  // after that would be a 155 drop, not a connection).
  auto full = [&ct] { return uint64_t(ct.size()) >= uint64_t(ct.capacity()) * 9 / 10; };
  std::vector<double> mg_mpps, mg_cycles, tp_mpps, ratios, io_mpps, mac_mpps, mac_ratios,
      pipe_cycles, mg_busy, io_busy, mg_refused, tp_refused, capacity;
  uint64_t mg_sent = 0, mg_recv = 0, tp_sent = 0, tp_recv = 0;
  for (uint32_t r = 0; r < rounds; ++r) {
    const PipelineCounters& pc = (*in)->pipeline(0).counters();
    const uint64_t before = pc.rx, busy_before = pc.busy_cycles;
    if (!(*in)->Start().ok()) break;
    const Generated g = Generate(sa, sb, pool, seg, traffic,
                                 prof == Profile::kNewConn ? std::function<bool()>(full)
                                                           : std::function<bool()>());
    (*in)->Stop();
    if (prof == Profile::kNewConn && g.seconds < seg) {
      say(meshgate::StrCat("the conntrack table was 90% full after ", g.seconds,
                           " s: measured until then"));
    }
    const uint64_t processed = pc.rx - before;
    const double busy = processed ? double(pc.busy_cycles - busy_before) / double(processed) : 0;
    mg_busy.push_back(busy);
    mg_refused.push_back(g.refused());
    mg_sent += g.sent;
    mg_recv += g.received;
    // Deny: nothing is delivered by design; the rate is what meshgate processed.
    const double mpps = double(prof == Profile::kDeny ? processed : g.received) / g.seconds / 1e6;
    mg_mpps.push_back(mpps);
    mg_cycles.push_back(processed ? double(rte_get_tsc_hz()) * g.seconds / double(processed) : 0);
    std::string line = meshgate::StrCat("round ", r + 1, "/", rounds, ": meshgate ",
                                        Fixed(mpps, 2), " Mpps, ", Fixed(busy, 0),
                                        " busy cycles/packet, ",
                                        Fixed(100 * mg_refused.back(), 0), "% refused");
    // Plain forwarding on the same ports (deny: the sink would see what
    // meshgate drops, so there is nothing to compare).
    double plain[2] = {0, 0}, plain_busy[2] = {0, 0};  // io, mac
    for (int k = 0; prof != Profile::kDeny && k < 2; ++k) {
      PlainForward fwd;
      fwd.a = (*in)->port_id(0);
      fwd.b = (*in)->port_id(1);
      fwd.rewrite = k == 1;
      if (rte_eal_remote_launch(PlainForwardMain, &fwd, worker) != 0) break;
      const Generated pg = Generate(sa, sb, pool, seg, traffic);
      fwd.stop.store(true);
      rte_eal_wait_lcore(worker);
      plain[k] = double(pg.received) / pg.seconds / 1e6;
      plain_busy[k] = fwd.packets ? double(fwd.busy_cycles) / double(fwd.packets) : 0;
    }
    if (plain[0] > 0 && plain[1] > 0) {
      io_mpps.push_back(plain[0]);
      mac_mpps.push_back(plain[1]);
      // meshgate's busy cycles per packet less io's: the pipeline's own.
      io_busy.push_back(plain_busy[0]);
      if (busy > 0) {
        pipe_cycles.push_back(busy - plain_busy[0]);
        capacity.push_back(plain_busy[0] / busy);
      }
      line += meshgate::StrCat(" (its ports: io ", Fixed(plain[0], 2), " Mpps, ",
                               Fixed(plain_busy[0], 0), " busy cycles/packet; mac ",
                               Fixed(plain[1], 2), ")");
    }
    if (pid > 0) {
      kill(pid, SIGCONT);
      const Generated tg = Generate(ta, tb, pool, seg, traffic);
      kill(pid, SIGSTOP);
      tp_refused.push_back(tg.refused());
      tp_sent += tg.sent;
      tp_recv += tg.received;
      const double t = double(tg.received) / tg.seconds / 1e6;
      tp_mpps.push_back(t);
      if (t > 0) ratios.push_back(mpps / t);
      if (t > 0 && plain[1] > 0) mac_ratios.push_back(plain[1] / t);
      line += meshgate::StrCat(", dpdk-testpmd ", Fixed(t, 2), " Mpps, ",
                               Fixed(100 * tp_refused.back(), 0), "% refused, ratio ",
                               Fixed(t > 0 ? mpps / t : 0, 2));
    }
    say(line);
  }
  (*in)->Stop();
  if (pid > 0) {
    kill(pid, SIGCONT);
    kill(pid, SIGINT);
    int st;
    for (int i = 0; i < 50 && waitpid(pid, &st, WNOHANG) == 0; ++i) rte_delay_ms(100);
    if (waitpid(pid, &st, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
  }
  if (mg_mpps.empty()) return out;
  uint64_t dropped = 0;
  std::string why;
  for (auto r : AllDropReasons()) {
    uint64_t n = (*in)->Dropped(r);
    dropped += n;
    if (n) why += meshgate::StrCat(" ", DropReasonEnumName(r), "=", n);
  }
  if (!why.empty()) say("meshgate drops:" + why);
  const char* kBase = "dpdk-testpmd io forwarding, same lcore, alternating rounds";
  out.push_back({"link_meshgate_mpps_" + tag, Median(mg_mpps), "Mpps", kBase,
                 tp_mpps.empty() ? 0 : Median(tp_mpps)});
  out.push_back({"link_meshgate_cycles_per_packet_" + tag, Median(mg_cycles),
                 "cycles/packet (core time / processed)", "", 0});
  out.push_back({"link_meshgate_busy_cycles_per_packet_" + tag, Median(mg_busy),
                 "cycles/packet (busy iterations, RX to TX)", "", 0});
  out.push_back({"link_generator_refused_meshgate_" + tag, Median(mg_refused),
                 "share of the generator's packets its ring refused", "", 0});
  if (!tp_refused.empty()) {
    out.push_back({"link_generator_refused_testpmd_" + tag, Median(tp_refused),
                   "share of the generator's packets its ring refused", "", 0});
  }
  if (!io_mpps.empty()) {
    out.push_back({"link_ports_io_mpps_" + tag, Median(io_mpps), "Mpps", kBase,
                   tp_mpps.empty() ? 0 : Median(tp_mpps)});
    out.push_back({"link_ports_mac_mpps_" + tag, Median(mac_mpps), "Mpps", kBase,
                   tp_mpps.empty() ? 0 : Median(tp_mpps)});
  }
  if (!mac_ratios.empty()) {
    out.push_back({"link_mac_to_testpmd_ratio_" + tag, Median(mac_ratios),
                   "ratio (median of the rounds')", kBase, 1});
  }
  if (!io_busy.empty()) {
    out.push_back({"link_ports_io_busy_cycles_per_packet_" + tag, Median(io_busy),
                   "cycles/packet (busy iterations, RX to TX)", "", 0});
  }
  if (!pipe_cycles.empty()) {
    out.push_back({"link_pipeline_cycles_per_packet_" + tag, Median(pipe_cycles),
                   "cycles/packet (meshgate's busy cycles less io's on its ports)", "", 0});
    // What the two forwarders could each carry, whatever the generator
    // offers: io's busy cycles per packet over meshgate's.
    out.push_back({"link_capacity_ratio_" + tag, Median(capacity),
                   "ratio (io's busy cycles/packet over meshgate's, median of the rounds')",
                   "io forwarding on meshgate's ports, same rounds", 1});
  }
  out.push_back({"link_meshgate_delivered_ratio_" + tag,
                 mg_sent ? double(mg_recv) / double(mg_sent) : 0, "ratio", "", 0});
  out.push_back({"link_meshgate_dropped_" + tag, double(dropped), "packets", "", 0});
  if (!ratios.empty()) {
    out.push_back({"link_meshgate_to_testpmd_ratio_" + tag, Median(ratios),
                   "ratio (median of the rounds')", kBase, 1});
    out.push_back({"link_testpmd_delivered_ratio_" + tag,
                   tp_sent ? double(tp_recv) / double(tp_sent) : 0, "ratio", "", 0});
  }
  return out;
}

}  // namespace meshgate::dataplane
