// meshgate: the command-line entry point.
//
//   meshgate policy check FILE...        validate policies and Services
//   meshgate policy explain ...          why a flow gets its verdict
//   meshgate bench classify [--json]     classifier benchmark
//
// Thin handlers: each subcommand parses arguments and calls one action
// function; errors are reported with file:line and a non-zero exit.
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "classifier/acl_table.h"
#include "classifier/bench_classify.h"
#include "classifier/compile.h"
#include "classifier/explain.h"
#include "control/manifest.h"
#include "control/bench_updates.h"
#include "control/daemon.h"
#include "control/mesh_process.h"
#include "control/simulate.h"
#include "control/vm.h"
#include "dataplane/bench_link.h"
#include "dataplane/bench_maglev.h"
#include "dataplane/bench_pipeline.h"
#include "dataplane/eal.h"
#include "dataplane/packet.h"
#include "identity/endpoint.h"
#include "identity/ipcache.h"
#include "identity/registry.h"

namespace meshgate {
namespace {

constexpr const char* kUsage = R"(meshgate: a DPDK dataplane enforcing Cilium cluster-mesh network policy

Usage:
  meshgate policy check [options] FILE...
      Validate Kubernetes manifests (CiliumNetworkPolicy,
      CiliumClusterwideNetworkPolicy, NetworkPolicy, Service) or scenario
      files. Prints every error as FILE:LINE: message; exits 1 on any error.
      --cluster-name NAME               local cluster name (default "default")
      --policy-default-local-cluster    Cilium 1.19 scoping (default: 1.18's, off)

  meshgate policy explain -f FILE [-f FILE...] [options]
      Verdict for one flow against the policies in FILE(s), and the rule
      (policy, rule index, section, line) or default that decided it.
      --direction ingress|egress        (default ingress)
      --subject LABELS                  labels of the enforcing endpoint, e.g. app=myapp
      --subject-namespace NS            (default "default")
      --peer LABELS                     pod labels of the other side, or
      --peer-entity NAME                world, host, remote-node, ... (reserved identity)
      --peer-ip ADDR                    an address outside the mesh: its identity is the
                                        CIDR identity of the longest policy prefix
                                        holding it, else world
      --peer-namespace NS               (default "default")
      --peer-cluster NAME               (default: --cluster-name)
      --protocol TCP|UDP|SCTP|ICMP|ICMPv6   (default TCP)
      --port N                          destination port, or ICMP type
      --cluster-name NAME               local cluster name (default "default")
      --policy-default-local-cluster
      --enforcement default|always|never
      --audit                           policy audit mode

  meshgate bench classify [--json] [--quick|--smoke] [--case RULES:IDS]... [--eal "ARGS"]
      Cycles/packet of the verdict lookup for 1k/10k/100k rules and
      1k/100k/1M identities beside a raw rte_acl 5-tuple baseline of the same
      rule count (medians of interleaved runs), the same after a change to
      one subject's rules (a second rte_acl context until consolidation),
      compile and build times, table memory. --case picks the sizes instead. --eal passes EAL
      arguments (e.g. "-l 1" to pin). --json prints one object per line:
      {"name","value","unit","baseline","baseline_value"}.

  meshgate bench pipeline [--json] [--quick|--smoke] [--lcores 0,1] [--eal "ARGS"]
                          [--only new|established|updates] [--repetitions N] [--flows N]
                          [--no-breakdown] [--no-hugepages]
      The whole packet path on in-memory bursts (VXLAN from 100k remote
      identities -> decap -> conntrack -> LPM -> 10k-rule ingress ACL, keys
      seen before answered by the worker's verdict cache -> delivery;
      established packets take their connection's cached verdict instead of
      LPM + ACL; only the processing is timed) for established flows, the
      same without conntrack, and new connections with and without the
      verdict cache, beside a parse + MAC rewrite baseline on the same
      bursts; compile + snapshot build with and without a rebuilt ACL (same
      rules: the ACL is reused);
      then 1,000 policy snapshots published while a worker on the second
      lcore forwards (packets lost, swaps/s), and a policy change in force:
      one of the 16 policies (one per service) changed, compiled and built
      on the snapshot in force (only its ACL partition is rebuilt), and the
      time from publishing it to its first enforced packet; beside it, every
      rule replaced. --only runs one phase
      (e.g. under perf); --repetitions sets the runs per phase (default 7);
      --flows the number of connections (default 65,536). --no-breakdown
      leaves out the runs without conntrack and without the verdict cache,
      so that a profile holds the deployed path only; --no-hugepages runs
      the EAL on ordinary memory (e.g. under valgrind, which cannot map
      hugepages; docs/benchmarks.md counts instructions so).

  meshgate bench maglev [--json] [--quick]
      Maglev table generation with Cilium's parameters (seed, murmur3
      permutations) for M = 16381 and 65521 with 10/100/1000 backends
      (medians), and service lookup + backend pick in cycles/packet beside a
      bare rte_hash lookup of the same keys.

  meshgate bench updates [--json] [--quick|--smoke] [--identities N] [--batch N]
      Identity and ipcache updates through the agent, the path every mesh
      feed update takes: 100k identities and 10k rules loaded, then 100k
      new identities (each joining its selector's class) with their
      ipcache entries in batches of --batch (default 1,000) with a commit
      after each, applied in place into the published tables (updates/s,
      ms per batch), beside batches compiled and published as snapshots in
      the same run.

  meshgate bench link [--json] [--seconds N] [--rounds N] [--testpmd PATH]
                      [--profile P] [--flows N] [--rules N]
      Forwarding through real memif links: this process generates and sinks
      on core 0; on core 1 meshgate (full pipeline, frontend -> myapp) and
      dpdk-testpmd --forward-mode=io, each on its own pair of links, take
      turns: --rounds rounds (default 3) of meshgate then testpmd, each for
      --seconds / rounds (default 3 s in all per forwarder), the other one
      stopped. Prints the medians of both forwarders' Mpps and of the
      rounds' ratios, meshgate's cycles/packet (core time / packets
      processed; busy: poll iterations that received packets, RX to TX),
      the share of the generator's packets each forwarder's full ring
      refused (none: it kept up, and its rate is the generator's) and
      drops; each round's figures as it goes. Each round also forwards on
      meshgate's own ports with no pipeline (io: packets untouched; mac:
      MAC addresses rewritten, as l2fwd), which gives the pipeline's own
      cycles/packet on the link (meshgate's busy cycles less io's), the
      capacity ratio (io's busy cycles over meshgate's: what each could
      carry, whatever the generator offers) and what a MAC-rewriting
      forwarder scores against testpmd (not for deny); a run takes about
      4 x --seconds. Profiles:
      established (UDP over --flows connections, default 3073), new-conn
      (TCP SYNs, each a new connection; one round, which ends early when the
      2M-connection table is 90% full), deny (all denied by policy),
      service (to a service frontend, DNAT), ipv6, fabric (the established
      frames in VXLAN from a peer node, the source identity in the VNI,
      into meshgate's fabric port and out decapsulated to myapp: meshgate
      sends 60-byte frames where io forwarding sends the 110-byte tunnel
      frames, so its ratio is not like for like). --rules adds synthetic
      ACL rules.

  meshgate simulate [--json] [-v] FILE...
      Run scenario files (docs/scenarios.md; the format is
      ../shared/brief/scenario-format.md): one instance per cluster in this
      process, joined by an in-memory VXLAN underlay, fed identities,
      ipcache entries, endpoints and services through mesh feed frames;
      every probe is a real packet through the real pipelines. Prints one
      line per probe (--json: one object per probe) and a last line
      "N passed, M failed". Exits 0 iff every probe passed, 1 if any failed,
      2 when a file could not be run. -v reports frames the underlay could
      not deliver.

  meshgate run --config FILE
      Run one cluster's meshgate as a daemon (docs/daemon.md): the ports,
      worker lcores, the mesh feed socket, the admin socket for meshgatectl,
      Prometheus metrics and DPDK telemetry (/meshgate/status). Stops
      cleanly on SIGINT/SIGTERM.
      --check        validate the config file and exit

  meshgate mesh --config FILE
      The mesh controller as a process: allocates identities, lists Service
      backends, feeds every cluster's daemon over its feed socket (full
      resync on every reconnect) and takes Services, policies and endpoint
      changes from meshgatectl on its own admin socket.

  meshgate vm --socket PATH --mac MAC --ip ADDR [--serve] [--probe ADDR:PORT ...]
      A VM stand-in on a vhost-user socket (a net_virtio_user port in its own
      process): answers connections and probes addresses; see `meshgate vm --help`.

  meshgate help | --help | -h
  meshgate version
)";

int Usage(int code) {
  std::fputs(kUsage, code == 0 ? stdout : stderr);
  return code;
}

int Fail(const std::string& msg) {
  fmt::print(stderr, "meshgate: {}\n", msg);
  return 2;
}

int PolicyCheck(const std::vector<std::string>& args) {
  classifier::ParseContext ctx;
  std::vector<std::string> files;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--cluster-name" && i + 1 < args.size()) ctx.cluster_name = args[++i];
    else if (args[i] == "--policy-default-local-cluster") ctx.policy_default_local_cluster = true;
    else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
    else if (args[i].starts_with("--")) return Fail("policy check: unknown option " + args[i]);
    else files.push_back(args[i]);
  }
  if (files.empty()) return Fail("policy check: no FILE given (see meshgate --help)");
  auto r = control::CheckFiles(files, ctx);
  for (const auto& d : r.diags) fmt::print("{}\n", d.ToString());
  fmt::print("{} file(s): {} policies, {} services, {} error(s)\n", r.files, r.policies,
             r.services, r.diags.size());
  return r.diags.empty() ? 0 : 1;
}

std::optional<std::map<std::string, std::string>> ParseLabelList(const std::string& s) {
  std::map<std::string, std::string> m;
  for (auto part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    auto eq = part.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    m[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
  }
  return m;
}

int PolicyExplain(const std::vector<std::string>& args) {
  classifier::ParseContext ctx;
  classifier::CompileOptions opts;
  std::vector<std::string> files;
  classifier::FlowQuery q;
  identity::EndpointSpec subject, peer;
  std::string peer_entity, peer_cluster, peer_ip, protocol = "TCP";
  bool have_peer = false;
  long port = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    std::optional<std::string> v;
    if (a == "-f" && (v = next())) files.push_back(*v);
    else if (a == "--direction" && (v = next())) {
      if (*v == "ingress") q.dir = classifier::Direction::kIngress;
      else if (*v == "egress") q.dir = classifier::Direction::kEgress;
      else return Fail("--direction: want ingress or egress");
    } else if (a == "--subject" && (v = next())) {
      auto m = ParseLabelList(*v);
      if (!m) return Fail("--subject: want k=v,k=v");
      subject.labels = *m;
    } else if (a == "--subject-namespace" && (v = next())) subject.ns = *v;
    else if (a == "--peer" && (v = next())) {
      auto m = ParseLabelList(*v);
      if (!m) return Fail("--peer: want k=v,k=v");
      peer.labels = *m;
      have_peer = true;
    } else if (a == "--peer-entity" && (v = next())) peer_entity = *v;
    else if (a == "--peer-ip" && (v = next())) peer_ip = *v;
    else if (a == "--peer-namespace" && (v = next())) peer.ns = *v;
    else if (a == "--peer-cluster" && (v = next())) peer_cluster = *v;
    else if (a == "--protocol" && (v = next())) protocol = *v;
    else if (a == "--port" && (v = next())) {
      port = std::strtol(v->c_str(), nullptr, 10);
      if (port < 0 || port > 65535) return Fail("--port: want 0..65535");
    } else if (a == "--cluster-name" && (v = next())) ctx.cluster_name = *v;
    else if (a == "--policy-default-local-cluster") ctx.policy_default_local_cluster = true;
    else if (a == "--audit") opts.audit = true;
    else if (a == "--enforcement" && (v = next())) {
      if (*v == "default") opts.enforcement = classifier::EnforcementMode::kDefault;
      else if (*v == "always") opts.enforcement = classifier::EnforcementMode::kAlways;
      else if (*v == "never") opts.enforcement = classifier::EnforcementMode::kNever;
      else return Fail("--enforcement: want default, always or never");
    } else if (a == "-h" || a == "--help") return Usage(0);
    else return Fail("policy explain: unknown or incomplete option " + a);
  }
  if (files.empty()) return Fail("policy explain: give the policies with -f FILE");
  if (int(have_peer) + int(!peer_entity.empty()) + int(!peer_ip.empty()) != 1) {
    return Fail("policy explain: give exactly one of --peer, --peer-entity or --peer-ip");
  }
  if (protocol == "TCP") q.proto = identity::kProtoTcp;
  else if (protocol == "UDP") q.proto = identity::kProtoUdp;
  else if (protocol == "SCTP") q.proto = identity::kProtoSctp;
  else if (protocol == "ICMP") q.proto = identity::kProtoIcmp;
  else if (protocol == "ICMPv6") q.proto = identity::kProtoIcmpv6;
  else return Fail("--protocol: want TCP, UDP, SCTP, ICMP or ICMPv6");
  q.port = uint16_t(port);

  control::Manifests m;
  std::vector<classifier::Diagnostic> diags;
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) return Fail("cannot open " + f);
    std::stringstream ss;
    ss << in.rdbuf();
    classifier::ParseContext fctx = ctx;
    fctx.file = f;
    control::ParseManifests(ss.str(), fctx, m, diags);
  }
  for (const auto& d : diags) fmt::print(stderr, "{}\n", d.ToString());
  if (!diags.empty()) return 1;

  subject.cluster = ctx.cluster_name;
  q.subject = identity::IdentityLabels(subject);
  if (have_peer) {
    peer.cluster = peer_cluster.empty() ? ctx.cluster_name : peer_cluster;
    q.peer = identity::IdentityLabels(peer);
  } else if (!peer_ip.empty()) {
    auto addr = identity::IpAddr::Parse(peer_ip);
    if (!addr.ok()) return Fail("--peer-ip: " + std::string(addr.status().message()));
    std::set<identity::Prefix> prefixes;
    for (const auto& p : m.policies)
      for (const auto& r : p.rules)
        for (auto* sec : {&r.ingress, &r.ingress_deny, &r.egress, &r.egress_deny})
          for (const auto& pr : *sec) prefixes.insert(pr.cidrs.begin(), pr.cidrs.end());
    identity::Registry reg;
    identity::IpCache ipcache;
    if (auto st = ipcache.SyncCidrIdentities(prefixes, reg); !st.ok()) {
      return Fail(std::string(st.message()));
    }
    auto hit = ipcache.Lookup(*addr);
    q.peer_id = hit.id;
    q.peer = *reg.Find(hit.id);
    fmt::print("peer {}: identity {} ({})\n", peer_ip, hit.id, q.peer.ToString());
  } else {
    bool found = false;
    for (identity::NumericIdentity id = 1; id <= identity::reserved::kMaxReserved; ++id) {
      if (identity::ReservedName(id) == peer_entity) {
        q.peer_id = id;
        q.peer = identity::ReservedLabels(id);
        found = true;
      }
    }
    if (!found) return Fail("--peer-entity: unknown reserved identity " + peer_entity);
  }
  auto ex = classifier::Explain(m.policies, opts, q);
  fmt::print("{}", ex.ToString());
  return 0;
}

void PrintBench(const std::vector<classifier::BenchResult>& results, bool json) {
  for (const auto& r : results) {
    if (json) {
      std::string base = r.baseline.empty() ? "null" : fmt::format("\"{}\"", r.baseline);
      std::string bv = r.baseline.empty() ? "null" : fmt::format("{:.4g}", r.baseline_value);
      fmt::print("{{\"name\": \"{}\", \"value\": {:.4g}, \"unit\": \"{}\", \"baseline\": {}, "
                 "\"baseline_value\": {}}}\n",
                 r.name, r.value, r.unit, base, bv);
    } else if (r.baseline.empty()) {
      fmt::print("{:<62} {:>14.4g} {}\n", r.name, r.value, r.unit);
    } else {
      fmt::print("{:<62} {:>14.4g} {:<14} baseline {:.4g} ({})\n", r.name, r.value, r.unit,
                 r.baseline_value, r.baseline);
    }
  }
}

int BenchPipeline(const std::vector<std::string>& args) {
  bool json = false;
  dataplane::PipelineBenchOptions o;
  dataplane::EalOptions eal;
  eal.name = "meshgate-bench";
  eal.no_huge_memory_mb = 4096;
  eal.extra = {"--no-pci"};
  std::string lcores = "0,1";  // control on the first, the hitless-update worker on the second
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--quick") {
      o.identities = 10000;
      o.repetitions = 3;
      o.swaps = 200;
    } else if (args[i] == "--smoke") {
      o.rules = 200;
      o.identities = 1000;
      o.flows = 2048;
      o.repetitions = 1;
      o.swaps = 20;
      eal.no_huge_memory_mb = 512;
    } else if (args[i] == "--lcores" && i + 1 < args.size()) {
      lcores = args[++i];
    } else if (args[i] == "--only" && i + 1 < args.size()) {
      o.only = args[++i];
      if (o.only != "new" && o.only != "established" && o.only != "updates")
        return Fail("bench pipeline: --only takes new, established or updates");
    } else if (args[i] == "--repetitions" && i + 1 < args.size()) {
      o.repetitions = std::max(1, std::atoi(args[++i].c_str()));
    } else if (args[i] == "--flows" && i + 1 < args.size()) {
      o.flows = uint32_t(std::max(64, std::atoi(args[++i].c_str())));
    } else if (args[i] == "--no-breakdown") {
      o.breakdown = false;
    } else if (args[i] == "--no-hugepages") {
      eal.allow_hugepages = false;
    } else if (args[i] == "--eal" && i + 1 < args.size()) {
      for (auto p : absl::StrSplit(args[++i], ' ', absl::SkipEmpty())) eal.extra.emplace_back(p);
    } else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
    else return Fail("bench pipeline: unknown option " + args[i]);
  }
  eal.extra.push_back("-l");
  eal.extra.push_back(lcores);
  if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
  if (auto st = dataplane::RegisterPacketMeta(); !st.ok()) return Fail(std::string(st.message()));
  auto results = dataplane::RunPipelineBench(o);
  PrintBench(results, json);
  return results.empty() ? 1 : 0;
}

int BenchUpdates(const std::vector<std::string>& args) {
  bool json = false;
  control::UpdatesBenchOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--quick") {
      o.identities = 10000;
      o.updates = 20000;
      o.baseline_batches = 3;
    } else if (args[i] == "--smoke") {
      o.identities = 1000;
      o.rules = 200;
      o.updates = 2000;
      o.batch = 500;
      o.baseline_batches = 2;
    } else if (args[i] == "--identities" && i + 1 < args.size()) {
      o.identities = uint32_t(std::max(1, std::atoi(args[++i].c_str())));
    } else if (args[i] == "--batch" && i + 1 < args.size()) {
      o.batch = uint32_t(std::max(1, std::atoi(args[++i].c_str())));
    } else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
    else return Fail("bench updates: unknown option " + args[i]);
  }
  if (o.identities + o.updates + o.batch * o.baseline_batches > 60000u * 200) {
    return Fail("bench updates: at most 12,000,000 identities in all");
  }
  dataplane::EalOptions eal;
  eal.name = "meshgate-bench-updates";
  eal.no_huge_memory_mb = 2048;
  eal.extra = {"--no-pci", "-l", "0"};
  if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
  if (auto st = dataplane::RegisterPacketMeta(); !st.ok()) return Fail(std::string(st.message()));
  auto results = control::RunUpdatesBench(o);
  PrintBench(results, json);
  return results.empty() ? 1 : 0;
}

int BenchLink(const std::vector<std::string>& args) {
  bool json = false;
  dataplane::LinkBenchOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--seconds" && i + 1 < args.size()) o.seconds = std::atof(args[++i].c_str());
    else if (args[i] == "--testpmd" && i + 1 < args.size()) o.testpmd = args[++i];
    else if (args[i] == "--profile" && i + 1 < args.size()) o.profile = args[++i];
    else if (args[i] == "--flows" && i + 1 < args.size()) o.flows = uint32_t(std::atol(args[++i].c_str()));
    else if (args[i] == "--rules" && i + 1 < args.size()) o.rules = uint32_t(std::atol(args[++i].c_str()));
    else if (args[i] == "--rounds" && i + 1 < args.size()) o.rounds = uint32_t(std::atol(args[++i].c_str()));
    else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
    else return Fail("bench link: unknown option " + args[i]);
  }
  if (o.rounds == 0 || o.rounds > 100) return Fail("--rounds: want 1..100");
  if (o.seconds <= 0 || o.seconds > 600) return Fail("--seconds: want 0..600");
  if (o.flows == 0 || o.flows > 64000) return Fail("--flows: want 1..64000");
  if (o.rules > 200000) return Fail("--rules: want 0..200000");
  bool known = false;
  for (const char* p : dataplane::kLinkProfiles) known = known || o.profile == p;
  if (!known) {  // the list from kLinkProfiles, so that it cannot fall behind
    std::string list;
    for (const char* p : dataplane::kLinkProfiles) list += (list.empty() ? "" : ", ") + std::string(p);
    return Fail("--profile: one of " + list);
  }
  std::string base = fmt::format("/tmp/meshgate-link-{}", getpid());
  o.socket_a = base + "-a.sock";
  o.socket_b = base + "-b.sock";
  o.socket_c = base + "-c.sock";
  o.socket_d = base + "-d.sock";
  dataplane::EalOptions eal;
  eal.name = "meshgate-link";
  eal.no_huge_memory_mb = 1024;
  eal.extra = {"--no-pci", "-l", "0,1",
               "--vdev=net_memif0,role=server,socket=" + o.socket_a,
               "--vdev=net_memif1,role=server,socket=" + o.socket_b,
               "--vdev=net_memif2,role=client,socket=" + o.socket_a,
               "--vdev=net_memif3,role=client,socket=" + o.socket_b,
               "--vdev=net_memif4,role=server,socket=" + o.socket_c,
               "--vdev=net_memif5,role=server,socket=" + o.socket_d};
  o.testpmd_eal = {fmt::format("--file-prefix=meshgate-testpmd-{}", getpid())};
  if (dataplane::HugepagesAvailable()) {
    o.testpmd_eal.push_back("--in-memory");
  } else {
    for (const char* a : {"--no-huge", "--no-shconf", "-m", "512"}) o.testpmd_eal.push_back(a);
  }
  if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
  auto results = dataplane::RunLinkBench(o);
  std::remove(o.socket_a.c_str());
  std::remove(o.socket_b.c_str());
  std::remove(o.socket_c.c_str());
  std::remove(o.socket_d.c_str());
  PrintBench(results, json);
  return results.empty() ? 1 : 0;
}

int BenchClassify(const std::vector<std::string>& args) {
  bool json = false;
  bool custom_cases = false;
  classifier::BenchOptions o;
  dataplane::EalOptions eal;
  eal.name = "meshgate-bench";
  eal.no_huge_memory_mb = 4096;
  eal.extra = {"--no-pci"};  // in-memory bursts: no device is ever probed
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--quick") {
      o.cases = {{1000, 1000}, {10000, 1000}, {10000, 100000}};
      o.repetitions = 5;
    } else if (args[i] == "--smoke") {
      o.cases = {{200, 100}, {200, 2000}};
      o.flows = 1024;
      o.repetitions = 1;
      eal.no_huge_memory_mb = 256;
    } else if (args[i] == "--case" && i + 1 < args.size()) {
      uint32_t r = 0, n = 0;
      if (std::sscanf(args[++i].c_str(), "%u:%u", &r, &n) != 2 || r == 0 || n == 0) {
        return Fail("--case: want RULES:IDENTITIES, e.g. 10000:100000");
      }
      if (!custom_cases) o.cases.clear();
      custom_cases = true;
      o.cases.emplace_back(r, n);
    } else if (args[i] == "--eal" && i + 1 < args.size()) {
      for (auto p : absl::StrSplit(args[++i], ' ', absl::SkipEmpty())) eal.extra.emplace_back(p);
    } else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
    else return Fail("bench classify: unknown option " + args[i]);
  }
  if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
  fmt::print(stderr, "bench classify: rte_acl classify method: {}\n",
             classifier::AclTable::BestMethod());
  auto results = classifier::RunClassifyBench(o);
  PrintBench(results, json);
  return results.empty() ? 1 : 0;
}

}  // namespace
}  // namespace meshgate

namespace meshgate {
namespace {
int Simulate(const std::vector<std::string>& args) {
  control::SimulateOptions o;
  std::vector<std::string> files;
  for (const auto& a : args) {
    if (a == "--json") o.json = true;
    else if (a == "-v" || a == "--verbose") o.verbose = true;
    else if (a == "-h" || a == "--help") return Usage(0);
    else if (a.starts_with("-")) return Fail("simulate: unknown option " + a);
    else files.push_back(a);
  }
  if (files.empty()) return Fail("simulate: no scenario file given");
  dataplane::EalOptions eal;
  eal.name = "simulate";
  eal.no_huge_memory_mb = 1024;
  eal.extra = {"--no-pci", "-l", "0", "--log-level=*:error"};
  if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
  if (auto st = dataplane::RegisterPacketMeta(); !st.ok()) return Fail(std::string(st.message()));
  auto t = control::Simulate(files, o);
  if (!o.json) fmt::print("{} passed, {} failed\n", t.passed, t.failed);
  else fmt::print(stderr, "{} passed, {} failed\n", t.passed, t.failed);
  return t.errors ? 2 : t.failed ? 1 : 0;
}
}  // namespace
}  // namespace meshgate

int main(int argc, char** argv) {
  using namespace meshgate;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage(2);
  const std::string cmd = args[0];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") return Usage(0);
  if (cmd == "version" || cmd == "--version") {
    fmt::print("meshgate 0.1.0 (Cilium 1.18 policy semantics)\n");
    return 0;
  }
  if (args.size() >= 2 && cmd == "policy") {
    std::vector<std::string> rest(args.begin() + 2, args.end());
    if (args[1] == "check") return PolicyCheck(rest);
    if (args[1] == "explain") return PolicyExplain(rest);
  }
  if (cmd == "simulate") return Simulate({args.begin() + 1, args.end()});
  if (cmd == "vm") return control::RunVm({args.begin() + 1, args.end()});
  if (cmd == "run" || cmd == "mesh") {
    std::string config;
    bool check = false;
    for (size_t i = 1; i < args.size(); ++i) {
      if ((args[i] == "--config" || args[i] == "-c") && i + 1 < args.size()) config = args[++i];
      else if (args[i] == "--check" && cmd == "run") check = true;
      else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
      else return Fail(cmd + ": unexpected " + args[i]);
    }
    if (config.empty()) return Fail(cmd + ": --config FILE is required");
    if (cmd == "mesh") return control::RunMesh(config);
    auto c = control::LoadDaemonConfig(config);
    if (!c.ok()) return Fail(std::string(c.status().message()));
    if (check) {
      fmt::print("{}: ok (cluster {} id {}, {} ports)\n", config, c->cluster, c->cluster_id, c->ports.size());
      return 0;
    }
    return control::RunDaemon(*c);
  }
  if (args.size() >= 2 && cmd == "bench" && args[1] == "classify") {
    return BenchClassify({args.begin() + 2, args.end()});
  }
  if (args.size() >= 2 && cmd == "bench" && args[1] == "pipeline") {
    return BenchPipeline({args.begin() + 2, args.end()});
  }
  if (args.size() >= 2 && cmd == "bench" && args[1] == "maglev") {
    bool json = false;
    dataplane::MaglevBenchOptions o;
    for (size_t i = 2; i < args.size(); ++i) {
      if (args[i] == "--json") json = true;
      else if (args[i] == "--quick") o.repetitions = 3, o.lookups = 1 << 16, o.backends = {10, 100};
      else if (args[i] == "-h" || args[i] == "--help") return Usage(0);
      else return Fail("bench maglev: unknown option " + args[i]);
    }
    dataplane::EalOptions eal;
    eal.name = "meshgate-bench";
    eal.extra = {"--no-pci", "-l", "0", "--log-level=*:error"};
    if (auto st = dataplane::InitEal(eal); !st.ok()) return Fail(std::string(st.message()));
    auto results = dataplane::RunMaglevBench(o);
    PrintBench(results, json);
    return results.empty() ? 1 : 0;
  }
  if (args.size() >= 2 && cmd == "bench" && args[1] == "updates") {
    return BenchUpdates(std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (args.size() >= 2 && cmd == "bench" && args[1] == "link") {
    return BenchLink({args.begin() + 2, args.end()});
  }
  fmt::print(stderr, "meshgate: unknown command '{}'\n\n", fmt::join(args, " "));
  return Usage(2);
}
