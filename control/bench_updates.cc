#include "control/bench_updates.h"

#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "control/agent.h"
#include "control/feed.h"
#include "dataplane/instance.h"
#include "identity/strutil.h"

namespace meshgate::control {
namespace {

namespace v1 = mesh::v1;

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Identity number i of the mesh: clusters 2.., 60,000 each, labels
// app=client-(i % 1000) with a distinct pod-template-hash (so each is its
// own identity and every one joins its selector's class).
uint32_t IdOf(uint32_t i) { return ((2 + i / 60000) << 16) | (1 + i % 60000); }

void AddIdentity(uint32_t i, std::vector<v1::Update>& out) {
  uint32_t cluster = 2 + i / 60000;
  v1::Update u;
  auto* x = u.mutable_identity_upsert();
  x->set_id(IdOf(i));
  x->add_labels(meshgate::StrCat("k8s:app=client-", i % 1000));
  x->add_labels(meshgate::StrCat("k8s:pod-template-hash=", i));
  x->add_labels("k8s:io.kubernetes.pod.namespace=default");
  x->add_labels(meshgate::StrCat("k8s:io.cilium.k8s.policy.cluster=cluster", cluster));
  out.push_back(std::move(u));
  v1::Update e;
  auto* y = e.mutable_ipcache_upsert();
  y->set_prefix(meshgate::StrCat("10.", 100 + cluster, ".", (i % 60000) / 250, ".", i % 250,
                                 "/32"));
  y->set_identity(IdOf(i));
  y->set_tunnel_endpoint(meshgate::StrCat("100.64.", cluster, ".1"));
  y->set_cluster(meshgate::StrCat("cluster", cluster));
  out.push_back(std::move(e));
}

// One CiliumNetworkPolicy: app=svc accepts app=client-(j % 1000) on TCP
// 1000 + j / 1000, `rules` entries.
std::string PolicyYaml(uint32_t rules) {
  std::string y =
      "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bench}\nspec:\n"
      "  endpointSelector: {matchLabels: {app: svc}}\n  ingress:\n";
  for (uint32_t j = 0; j < rules; ++j) {
    meshgate::StrAppend(&y, "  - fromEndpoints: [{matchLabels: {app: client-", j % 1000,
                        "}}]\n    toPorts: [{ports: [{port: '", 1000 + j / 1000,
                        "', protocol: TCP}]}]\n");
  }
  return y;
}

}  // namespace

std::vector<classifier::BenchResult> RunUpdatesBench(const UpdatesBenchOptions& o) {
  std::vector<classifier::BenchResult> out;
  auto say = [&](const std::string& what) {
    if (o.progress) std::fprintf(stderr, "bench updates: %s\n", what.c_str());
  };
  // One endpoint port on a ring pair: the agent needs an instance.
  const std::string name = meshgate::StrCat("bu", getpid());
  rte_ring* rx = rte_ring_create((name + "r").c_str(), 256, SOCKET_ID_ANY, 0);
  rte_ring* tx = rte_ring_create((name + "t").c_str(), 256, SOCKET_ID_ANY, 0);
  if (rx == nullptr || tx == nullptr || rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY) < 0) {
    std::fprintf(stderr, "bench updates: cannot create the ring port\n");
    return out;
  }
  dataplane::InstanceConfig ic;
  ic.name = name;
  ic.ipcache = {2 * (o.identities + o.updates) + 1024, 1024};
  ic.conntrack_size = 1024;
  ic.mbufs = 1023;
  ic.ports.push_back({"net_ring_" + name, dataplane::PortRole::kEndpoint});
  auto inst = dataplane::Instance::Create(ic);
  if (!inst.ok()) {
    std::fprintf(stderr, "bench updates: %s\n", std::string(inst.status().message()).c_str());
    return out;
  }
  AgentConfig ac;
  ac.cluster = "cluster1";
  ac.cluster_id = 1;
  Agent agent(ac, **inst);
  auto apply = [&](const v1::Update& u) {
    auto st = agent.Apply(u);
    if (!st.ok()) std::fprintf(stderr, "bench updates: %s\n", std::string(st.message()).c_str());
    return st.ok();
  };

  say(meshgate::StrCat("loading ", o.identities, " identities and ", o.rules, " rules..."));
  v1::Update hello;
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  if (!apply(hello)) return out;
  std::vector<v1::Update> batch;
  for (uint32_t i = 0; i < o.identities; ++i) AddIdentity(i, batch);
  v1::Update svc;
  auto* si = svc.mutable_identity_upsert();
  si->set_id(0x10001);
  for (const char* l : {"k8s:app=svc", "k8s:io.kubernetes.pod.namespace=default",
                        "k8s:io.cilium.k8s.policy.cluster=cluster1"}) {
    si->add_labels(l);
  }
  batch.push_back(svc);
  v1::Update ep;
  auto* x = ep.mutable_endpoint_attach();
  x->set_name("svc");
  x->set_namespace_("default");
  x->set_identity(0x10001);
  x->add_addresses("10.1.0.20");
  x->set_port(0);
  x->set_mac("02:00:00:00:00:01");
  batch.push_back(ep);
  v1::Update pol;
  pol.mutable_manifest_apply()->set_yaml(PolicyYaml(o.rules));
  batch.push_back(pol);
  for (const auto& u : batch) {
    if (!apply(u)) return out;
  }
  auto t0 = std::chrono::steady_clock::now();
  if (auto st = agent.Commit(); !st.ok()) {
    std::fprintf(stderr, "bench updates: %s\n", std::string(st.message()).c_str());
    return out;
  }
  const double first_ms = MsSince(t0);
  const uint64_t gen0 = agent.Counts().generation;
  const uint32_t acl_rules = agent.acl() ? agent.acl()->num_rules() : 0;

  // In place: batches of new identities (each joins its selector's class)
  // with their ipcache entries, a Commit after each.
  say(meshgate::StrCat("measuring ", o.updates, " identities + ipcache entries in place..."));
  std::vector<double> batch_ms;
  double total_ms = 0;
  uint32_t next = o.identities;
  for (uint32_t done = 0; done < o.updates; done += o.batch) {
    batch.clear();
    uint32_t n = std::min(o.batch, o.updates - done);
    for (uint32_t k = 0; k < n; ++k) AddIdentity(next++, batch);
    t0 = std::chrono::steady_clock::now();
    for (const auto& u : batch) {
      if (!apply(u)) return out;
    }
    if (auto st = agent.Commit(); !st.ok()) return out;
    double ms = MsSince(t0);
    batch_ms.push_back(ms);
    total_ms += ms;
  }
  const uint64_t applied = agent.Counts().in_place;
  if (agent.Counts().generation != gen0 || applied != 2ull * o.updates) {
    std::fprintf(stderr, "bench updates: %llu of %llu updates applied in place, %llu snapshots\n",
                 (unsigned long long)applied, 2ull * o.updates,
                 (unsigned long long)(agent.Counts().generation - gen0));
  }

  const uint64_t in_place_snapshots = agent.Counts().generation - gen0;
  // Baseline: the same kind of batches on the same state, compiled and
  // published (what every update cost before).
  say(meshgate::StrCat("measuring ", o.baseline_batches, " batches compiled and published..."));
  std::vector<double> full_ms;
  agent.set_in_place_updates(false);
  for (uint32_t b = 0; b < o.baseline_batches; ++b) {
    batch.clear();
    for (uint32_t k = 0; k < o.batch; ++k) AddIdentity(next++, batch);
    t0 = std::chrono::steady_clock::now();
    for (const auto& u : batch) {
      if (!apply(u)) return out;
    }
    if (auto st = agent.Commit(); !st.ok()) return out;
    full_ms.push_back(MsSince(t0));
  }
  const double in_place_rate = total_ms > 0 ? 2.0 * o.updates / (total_ms / 1e3) : 0;
  const double full_rate = Median(full_ms) > 0 ? 2.0 * o.batch / (Median(full_ms) / 1e3) : 0;
  std::string tag = meshgate::StrCat(o.rules, "rules_", o.identities, "ids");
  out.push_back({"updates_initial_commit_ms_" + tag, first_ms, "ms", "", 0});
  out.push_back({"updates_acl_rules_" + tag, double(acl_rules), "rules", "", 0});
  out.push_back({"updates_in_place_per_second_" + tag, in_place_rate, "updates/s",
                 meshgate::StrCat("compiled and published, batches of ", o.batch), full_rate});
  out.push_back({"updates_in_place_batch_ms_" + tag, Median(batch_ms), "ms",
                 "compiled and published", Median(full_ms)});
  out.push_back({"updates_in_place_snapshots_published", double(in_place_snapshots),
                 "snapshots", "", 0});
  return out;
}

}  // namespace meshgate::control
