#include "dataplane/bench_pipeline.h"
#include "dataplane/bench_frames.h"
#include "dataplane/bench_policy.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "dataplane/conntrack.h"
#include "dataplane/pipeline.h"
#include "identity/endpoint.h"
#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {

using classifier::BenchResult;
using classifier::Median;
using identity::Requirement;
using identity::SelectorOp;

constexpr uint32_t kNodeIp = 0xC0A80001, kPeerIp = 0xC0A80002;  // 192.168.0.1 / .2
constexpr uint32_t kClientBase = 0x0A800000;                     // 10.128.0.0
constexpr uint32_t kServiceBase = 0x0A010000;                    // 10.1.0.0
constexpr uint16_t kFrameLen = 104;                              // VXLAN + TCP SYN

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A VXLAN frame from the peer node: client (identity in the VNI) -> service.
void WriteFrame(uint8_t* p, uint32_t vni, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
                uint16_t dport) {
  std::memset(p, 0, kFrameLen);
  WriteVxlanOuter(p, kPeerIp, kNodeIp, kFrameLen - kVxlanOuterLen, 50000, vni);
  uint8_t* in = p + kVxlanOuterLen;  // inner Ethernet + IPv4 + TCP SYN
  in[12] = 0x08;
  auto* iip = reinterpret_cast<rte_ipv4_hdr*>(in + 14);
  iip->version_ihl = RTE_IPV4_VHL_DEF;
  iip->total_length = rte_cpu_to_be_16(40);
  iip->time_to_live = 64;
  iip->next_proto_id = 6;
  iip->src_addr = rte_cpu_to_be_32(src_ip);
  iip->dst_addr = rte_cpu_to_be_32(dst_ip);
  iip->hdr_checksum = rte_ipv4_cksum(iip);
  uint8_t* tcp = in + 34;
  tcp[0] = uint8_t(sport >> 8);
  tcp[1] = uint8_t(sport);
  tcp[2] = uint8_t(dport >> 8);
  tcp[3] = uint8_t(dport);
  tcp[12] = 5 << 4;
  tcp[13] = 0x02;
}

struct World {
  identity::Registry reg;
  identity::IpCache ipcache;
  std::unique_ptr<RcuCell<Snapshot>> qcell;  // the ipcache table's QSBR
  std::unique_ptr<IpcacheTable> table;
  std::vector<uint32_t> client_ids;
  std::vector<SnapshotEndpoint> services;
  classifier::CompileInput in;
};

SnapshotInput SnapInput(World& w, const classifier::CompiledPolicy& cp, uint64_t gen) {
  SnapshotInput si;
  si.generation = gen;
  si.policy = &cp;
  si.ipcache = w.table.get();
  si.endpoints = w.services;
  si.router_mac = {{0x02, 0xaa, 0, 0, 0, 1}};
  si.fabric.port = 0;
  si.fabric.node_v4 = kNodeIp;
  return si;
}

// Bursts of in-memory frames: refilled from templates outside the timed part.
struct Traffic {
  rte_mempool* pool = nullptr;
  std::vector<uint8_t> templates;  // flows x kFrameLen
  uint32_t flows = 0;
  bool Fill(rte_mbuf** pkts, uint32_t first, uint32_t n, uint16_t sport_xor) {
    if (rte_pktmbuf_alloc_bulk(pool, pkts, n) != 0) return false;
    for (uint32_t i = 0; i < n; ++i) {
      uint8_t* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrameLen));
      std::memcpy(d, &templates[size_t((first + i) % flows) * kFrameLen], kFrameLen);
      d[50 + 34] ^= uint8_t(sport_xor >> 8);  // vary the connection, same policy
      d[50 + 35] ^= uint8_t(sport_xor);
    }
    return true;
  }
};

void FreeOutputs(TxStage& out) {
  for (uint16_t p = 0; p < kMaxPorts; ++p) {
    if (out.n[p] != 0) rte_pktmbuf_free_bulk(out.pkts[p].data(), out.n[p]);
    out.n[p] = 0;
  }
}

// Cycles per packet of Process over every flow once, timing only Process.
double RunOnce(Pipeline& pl, const Snapshot& snap, Traffic& t, uint16_t sport_xor,
               uint64_t* forwarded) {
  TxStage out;
  rte_mbuf* pkts[kBurst];
  uint64_t cycles = 0, packets = 0, before = pl.counters().forwarded;
  for (uint32_t b = 0; b + kBurst <= t.flows; b += kBurst) {
    if (!t.Fill(pkts, b, kBurst, sport_xor)) break;
    uint64_t t0 = rte_rdtsc_precise();
    pl.Process(snap, pkts, kBurst, 0, out);
    cycles += rte_rdtsc_precise() - t0;
    packets += kBurst;
    FreeOutputs(out);
  }
  *forwarded = pl.counters().forwarded - before;
  return packets ? double(cycles) / double(packets) : 0;
}

// The l2fwd-like baseline on the same bursts: parse and rewrite MACs only.
double RunBaseline(Traffic& t) {
  rte_mbuf* pkts[kBurst];
  rte_mbuf* drops[kBurst];
  uint64_t cycles = 0, packets = 0;
  for (uint32_t b = 0; b + kBurst <= t.flows; b += kBurst) {
    if (!t.Fill(pkts, b, kBurst, 0)) break;
    uint64_t t0 = rte_rdtsc_precise();
    uint16_t nd = 0;
    uint16_t n = ParseBurst(pkts, kBurst, drops, &nd);
    for (uint16_t i = 0; i < n; ++i) {
      auto* eth = rte_pktmbuf_mtod(pkts[i], rte_ether_hdr*);
      std::swap(eth->src_addr, eth->dst_addr);
    }
    cycles += rte_rdtsc_precise() - t0;
    packets += kBurst;
    rte_pktmbuf_free_bulk(pkts, n);
    rte_pktmbuf_free_bulk(drops, nd);
  }
  return packets ? double(cycles) / double(packets) : 0;
}

// The hitless-update worker: forwards established flows until told to stop.
struct Hitless {
  RcuCell<Snapshot>* cell;
  Conntrack* ct;
  Traffic* traffic;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0}, forwarded{0}, dropped{0};
  std::atomic<uint64_t> first_drop_tsc{0};
};

int HitlessWorker(void* arg) {
  auto* h = static_cast<Hitless*>(arg);
  h->cell->Online(1);
  Pipeline pl(*h->cell, 1, h->ct);
  TxStage out;
  rte_mbuf* pkts[kBurst];
  uint32_t b = 0;
  while (!h->stop.load(std::memory_order_relaxed)) {
    const Snapshot* snap = h->cell->Read();
    if (h->traffic->Fill(pkts, b, kBurst, 0)) {
      uint64_t fwd0 = pl.counters().forwarded;
      pl.Process(*snap, pkts, kBurst, 0, out);
      uint64_t fwd = pl.counters().forwarded - fwd0;
      FreeOutputs(out);
      h->sent.fetch_add(kBurst, std::memory_order_relaxed);
      h->forwarded.fetch_add(fwd, std::memory_order_relaxed);
      if (fwd < kBurst) {
        h->dropped.fetch_add(kBurst - fwd, std::memory_order_relaxed);
        uint64_t zero = 0;
        h->first_drop_tsc.compare_exchange_strong(zero, rte_rdtsc());
      }
      b = (b + kBurst) % (h->traffic->flows - kBurst);
    }
    h->cell->Quiescent(1);
  }
  h->cell->Offline(1);
  return 0;
}

}  // namespace

std::vector<BenchResult> RunPipelineBench(const PipelineBenchOptions& o) {
  std::vector<BenchResult> out;
  auto say = [&](const char* what) {
    if (o.progress) std::fprintf(stderr, "bench pipeline: %s\n", what);
  };
  say(rte_eal_has_hugepages() ? "EAL memory: hugepages" : "EAL memory: ordinary (--no-huge)");
  say("preparing identities, ipcache and policy...");
  std::chrono::steady_clock::time_point t0_ipcache;
  World w;
  for (uint32_t s = 0; s < kServices; ++s) {
    auto id = w.reg.Allocate(1, Pod(meshgate::StrCat("svc-", s), 1, 0));
    if (!id.ok()) return out;
    SnapshotEndpoint ep;
    ep.port = uint16_t(1 + s);
    ep.mac = {{0x02, 0, 0, 0, 1, uint8_t(s)}};
    ep.identity = *id;
    ep.addrs.push_back(identity::IpAddr::V4(kServiceBase + 16 + s));
    w.services.push_back(ep);
    w.in.endpoints.push_back({*id, {}});
  }
  for (uint32_t j = 0; j < o.identities; ++j) {
    auto id = w.reg.Allocate(2 + j / 60000,
                             Pod(meshgate::StrCat("client-", j % kClientSelectors), 2, j + 1));
    if (!id.ok()) return out;
    w.client_ids.push_back(*id);
    identity::IpCacheEntry e;
    e.id = *id;
    e.tunnel_endpoint = identity::IpAddr::V4(kPeerIp);
    w.ipcache.Upsert(identity::Prefix::Host(identity::IpAddr::V4(kClientBase + j)), e);
  }
  w.qcell = std::move(*RcuCell<Snapshot>::Create(4));
  auto table = IpcacheTable::Create({o.identities + 1024, o.identities / 256 + 64}, w.qcell->qsbr());
  if (!table.ok()) return out;
  w.table = std::move(*table);
  t0_ipcache = std::chrono::steady_clock::now();
  if (!SyncIpcache(*w.table, w.ipcache, w.services).ok()) return out;
  double ipcache_ms = MsSince(t0_ipcache);
  auto policies = Policies(o.rules, 1000);
  w.in.policies = &policies;
  w.in.identities = &w.reg;
  w.in.options.allow_localhost = false;
  auto t0 = std::chrono::steady_clock::now();
  auto cp = classifier::Compile(w.in);
  double compile_ms = MsSince(t0);
  if (!cp.ok()) return out;
  t0 = std::chrono::steady_clock::now();
  auto snap = BuildSnapshot(SnapInput(w, *cp, 1));
  double build_ms = MsSince(t0);
  if (!snap.ok()) {
    std::fprintf(stderr, "bench pipeline: %s\n", std::string(snap.status().message()).c_str());
    return out;
  }

  // A snapshot whose rules compile the same (a service or endpoint change)
  // reuses the ACL: compile + everything but rte_acl_build.
  double unchanged_ms = 0;
  {
    SnapshotInput again = SnapInput(w, *cp, 2);
    again.previous_acl = (*snap)->acl;
    auto t1 = std::chrono::steady_clock::now();
    auto cp2 = classifier::Compile(w.in);
    if (cp2.ok()) {
      again.policy = &*cp2;
      auto s2 = BuildSnapshot(again);
      unchanged_ms = MsSince(t1);
      if (!s2.ok() || (*s2)->acl != (*snap)->acl) unchanged_ms = 0;
    }
  }

  // Flows: each hits one rule (client selector, service, port).
  say("preparing traffic...");
  Traffic t;
  t.flows = o.flows;
  t.templates.resize(size_t(o.flows) * kFrameLen);
  std::mt19937 rng(7);
  for (uint32_t i = 0; i < o.flows; ++i) {
    uint32_t r = rng() % o.rules;
    uint32_t c = r % kClientSelectors;
    uint32_t j = c + kClientSelectors * (rng() % std::max<uint32_t>(1, o.identities / kClientSelectors));
    if (j >= o.identities) j = c % o.identities;
    WriteFrame(&t.templates[size_t(i) * kFrameLen], w.client_ids[j], kClientBase + j,
               kServiceBase + 16 + r % kServices, uint16_t(1024 + i % 60000),
               uint16_t(1000 + r / kClientSelectors));
  }
  t.pool = rte_pktmbuf_pool_create("bench_pl", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  if (t.pool == nullptr) return out;
  auto cell = RcuCell<Snapshot>::Create(2);
  if (!cell.ok()) return out;
  RcuCell<Snapshot>& rc = **cell;
  (void)rc.RegisterReader(0);
  (void)rc.RegisterReader(1);
  // Each new-connection run adds `flows` connections; established flows are
  // created once.
  const bool measure_new = o.only.empty() || o.only == "new";
  uint32_t ct_cap = o.flows * uint32_t(measure_new ? 2 * o.repetitions + 2 : 2);
  auto ct = Conntrack::Create(ct_cap, rc.qsbr());
  if (!ct.ok()) {  // e.g. many repetitions: each keeps its connections
    std::fprintf(stderr, "bench pipeline: a conntrack table of %u connections: %s\n", ct_cap,
                 std::string(ct.status().message()).c_str());
    return out;
  }
  Pipeline pl(rc, 0, ct->get());
  // Breakdown: every new connection classified by rte_acl (no verdict cache).
  Pipeline no_vc(rc, 0, ct->get(), nullptr, nullptr, 0);
  const Snapshot& s = **snap;

  // New connections: every repetition uses fresh source ports.
  auto run = [&](const char* phase) { return o.only.empty() || o.only == phase; };
  std::vector<double> newc, newc_no_vc, est, base, est_no_ct;
  uint64_t fwd = 0, fwd_total = 0, expected = 0;
  if (run("new")) say("measuring new connections...");
  for (int rep = 0; run("new") && rep < o.repetitions; ++rep) {
    newc.push_back(RunOnce(pl, s, t, uint16_t(0x8000 + rep), &fwd));
    fwd_total += fwd;
    if (o.breakdown) {
      newc_no_vc.push_back(RunOnce(no_vc, s, t, uint16_t(0x4000 + rep), &fwd));
      fwd_total += fwd;
    }
    base.push_back(RunBaseline(t));
    expected += (o.breakdown ? 2 : 1) * (t.flows - t.flows % kBurst);
  }
  if (o.progress && run("new")) {
    std::fprintf(stderr, "bench pipeline: %llu of %llu policy keys answered by the verdict cache\n",
                 (unsigned long long)pl.counters().acl_cache_hits,
                 (unsigned long long)pl.counters().ct_new);
  }
  if (fwd_total != expected) {
    std::fprintf(stderr, "bench pipeline: new connections: %llu of %llu forwarded\n",
                 (unsigned long long)fwd_total, (unsigned long long)expected);
  }
  // Established: the same flows again (conntrack hits; policy still checked).
  if (run("established")) say("measuring established flows...");
  RunOnce(pl, s, t, 0, &fwd);  // create them
  Pipeline no_ct(rc, 0, nullptr);  // breakdown: the same path without conntrack
  for (int rep = 0; run("established") && rep < o.repetitions; ++rep) {
    est.push_back(RunOnce(pl, s, t, 0, &fwd));
    if (o.breakdown) est_no_ct.push_back(RunOnce(no_ct, s, t, 0, &fwd));
    base.push_back(RunBaseline(t));
  }
  if (o.progress) {
    std::fprintf(stderr, "bench pipeline: %llu of %llu packets decided by cached verdicts\n",
                 (unsigned long long)pl.counters().verdicts_cached,
                 (unsigned long long)pl.counters().rx);
  }
  std::string bl = "parse + MAC rewrite only (l2fwd-like), same bursts";
  std::string tag = meshgate::StrCat(o.rules, "rules_", o.identities, "ids");
  if (run("established")) {
    out.push_back({"pipeline_established_cycles_per_packet_" + tag, Median(est), "cycles/packet",
                   bl, Median(base)});
    if (o.breakdown) {
      out.push_back({"pipeline_without_conntrack_cycles_per_packet_" + tag, Median(est_no_ct),
                     "cycles/packet", bl, Median(base)});
    }
  }
  if (run("new")) {
    out.push_back({"pipeline_new_connection_cycles_per_packet_" + tag, Median(newc),
                   "cycles/packet", bl, Median(base)});
    if (o.breakdown) {
      out.push_back({"pipeline_new_connection_without_verdict_cache_cycles_per_packet_" + tag,
                     Median(newc_no_vc), "cycles/packet", bl, Median(base)});
    }
  }
  out.push_back({"pipeline_compile_ms_" + tag, compile_ms, "ms", "", 0});
  out.push_back({"pipeline_snapshot_build_ms_" + tag, build_ms, "ms", "", 0});
  if (unchanged_ms > 0) {
    out.push_back({"pipeline_same_rules_compile_build_ms_" + tag, unchanged_ms, "ms",
                   "compile + build with the ACL rebuilt", compile_ms + build_ms});
  }
  out.push_back({"ipcache_table_load_ms_" + tag, ipcache_ms, "ms", "", 0});

  // Hitless updates: a worker on another lcore forwards established flows
  // while control publishes `swaps` snapshots (recycled after their grace
  // period), then one that denies the traffic.
  if (!run("updates")) {
    rte_mempool_free(t.pool);
    return out;
  }
  unsigned worker = rte_get_next_lcore(-1, 1, 0);
  if (worker >= RTE_MAX_LCORE) {
    say("hitless updates skipped: EAL has one lcore (give -l 0,1)");
    return out;
  }
  say("measuring hitless updates...");
  std::vector<const Snapshot*> spare;
  auto cell2 = RcuCell<Snapshot>::Create(2, [&spare](const Snapshot* p) { spare.push_back(p); });
  if (!cell2.ok()) return out;
  RcuCell<Snapshot>& hc = **cell2;
  (void)hc.RegisterReader(1);
  for (int k = 0; k < 3; ++k) {
    SnapshotInput si = SnapInput(w, *cp, 10 + k);
    si.previous_acl = (*snap)->acl;  // the same rules: the same table
    auto sn = BuildSnapshot(si);
    if (!sn.ok()) return out;
    spare.push_back(sn->release());
  }
  // Every rule replaced (same selectors, other ports), compiled and built
  // on the snapshot in force: the worst case of a policy change.
  double replace_all_ms = 0;
  uint32_t replace_all_rules_built = 0;
  {
    auto all_policies = Policies(o.rules, 20000);
    w.in.policies = &all_policies;
    w.in.previous = &*cp;
    auto t1 = std::chrono::steady_clock::now();
    auto all_cp = classifier::Compile(w.in);
    if (!all_cp.ok()) return out;
    SnapshotInput si = SnapInput(w, *all_cp, 98);
    si.previous_acl = (*snap)->acl;
    auto all = BuildSnapshot(si);
    if (!all.ok()) return out;
    replace_all_ms = MsSince(t1);
    replace_all_rules_built = (*all)->acl->rules_built();
  }
  // The policy change measured under traffic: one service's policy of 16
  // (its ports), compiled and built on the snapshot in force, as the agent
  // does (CompileInput::previous, SnapshotInput::previous_acl).
  auto changed_policies = Policies(o.rules, 1000, /*changed=*/3, /*changed_base=*/20000);
  w.in.policies = &changed_policies;
  w.in.previous = &*cp;
  t0 = std::chrono::steady_clock::now();
  auto deny_cp = classifier::Compile(w.in);
  const double change_compile_ms = MsSince(t0);
  if (!deny_cp.ok()) return out;
  SnapshotInput deny_in = SnapInput(w, *deny_cp, 99);
  deny_in.previous_acl = (*snap)->acl;
  t0 = std::chrono::steady_clock::now();
  auto deny = BuildSnapshot(deny_in);
  const double change_build_ms = MsSince(t0);
  if (!deny.ok()) return out;
  const auto& deny_acl = *(*deny)->acl;
  Hitless h;
  h.cell = &hc;
  h.ct = ct->get();
  h.traffic = &t;
  hc.Publish(std::unique_ptr<const Snapshot>(spare.back()));
  spare.pop_back();
  rte_eal_remote_launch(HitlessWorker, &h, worker);
  uint32_t swaps = 0;
  uint64_t swap_t0 = rte_rdtsc();
  while (swaps < o.swaps) {
    hc.Reclaim();
    if (spare.empty()) continue;
    hc.Publish(std::unique_ptr<const Snapshot>(spare.back()));
    spare.pop_back();
    ++swaps;
  }
  double swap_s = double(rte_rdtsc() - swap_t0) / double(rte_get_tsc_hz());
  uint64_t sent_before_deny = h.sent.load(), lost = h.dropped.load();
  h.first_drop_tsc.store(0);
  uint64_t publish_tsc = rte_rdtsc();
  hc.Publish(std::move(*deny));
  // Wait for the worker's first enforced drop (at most 5 s).
  while (h.first_drop_tsc.load() == 0 &&
         rte_rdtsc() - publish_tsc < 5 * rte_get_tsc_hz()) {
    hc.Reclaim();
  }
  uint64_t first = h.first_drop_tsc.load();
  h.stop = true;
  rte_eal_wait_lcore(worker);
  while (hc.pending() > 0) hc.Reclaim();
  for (const Snapshot* p : spare) delete p;
  spare.clear();
  out.push_back({"hitless_swaps", double(swaps), "snapshots", "", 0});
  out.push_back({"hitless_packets_during_swaps", double(sent_before_deny), "packets", "", 0});
  out.push_back({"hitless_packets_lost_during_swaps", double(lost), "packets", "", 0});
  out.push_back({"hitless_swaps_per_second", double(swaps) / swap_s, "swaps/s", "", 0});
  out.push_back({"policy_change_compile_ms_" + tag, change_compile_ms, "ms",
                 "compile from scratch", compile_ms});
  out.push_back({"policy_change_build_ms_" + tag, change_build_ms, "ms",
                 "snapshot build from scratch", build_ms});
  out.push_back({"policy_change_acl_contexts_built", double(deny_acl.contexts_built()),
                 "contexts", "contexts classifying after it", double(deny_acl.num_contexts())});
  out.push_back({"policy_change_acl_rules_rebuilt", double(deny_acl.rules_built()), "rules",
                 "rules", double(deny_acl.num_rules())});
  if (first != 0) {
    double us = double(first - publish_tsc) * 1e6 / double(rte_get_tsc_hz());
    out.push_back({"policy_publish_to_first_enforced_packet_us", us, "us", "", 0});
    out.push_back({"policy_change_in_force_ms_" + tag,
                   change_compile_ms + change_build_ms + us / 1000.0, "ms",
                   "compile + build from scratch + publish", compile_ms + build_ms + us / 1000.0});
  }
  out.push_back({"policy_replace_all_compile_build_ms_" + tag, replace_all_ms, "ms",
                 "compile + build from scratch", compile_ms + build_ms});
  out.push_back({"policy_replace_all_acl_rules_rebuilt", double(replace_all_rules_built), "rules",
                 "", 0});
  rte_mempool_free(t.pool);
  return out;
}

}  // namespace meshgate::dataplane
