#include "classifier/bench_classify.h"

#include <rte_acl.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_malloc.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "identity/strutil.h"
#include "classifier/acl_table.h"
#include "classifier/compile.h"
#include "identity/endpoint.h"
#include "identity/registry.h"

namespace meshgate::classifier {
namespace {

using identity::Labels;
using identity::Requirement;
using identity::SelectorOp;

constexpr uint32_t kClientSelectors = 1000;  // distinct peer selectors
constexpr uint32_t kSubjects = 16;           // distinct subject selectors / endpoints

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
      .count();
}

Labels PodLabels(std::string app) {
  identity::EndpointSpec ep;
  ep.labels["app"] = std::move(app);
  ep.cluster = "cluster1";
  return identity::IdentityLabels(ep);
}

// Rule i: endpoints app=svc-(i%16) accept app=client-(i%1000) on TCP port
// 1000 + i/1000 (20000 + i/1000 for svc-`changed`). Every rule compiles to
// exactly one ACL rule whatever the number of identities behind each
// selector.
std::vector<Policy> MakePolicies(uint32_t rules, int changed = -1) {
  std::vector<Policy> ps(1);
  ps[0].name = "bench";
  ps[0].ns = "default";
  for (uint32_t i = 0; i < rules; ++i) {
    Rule r;
    r.subject = Selector({Requirement::Make("app", SelectorOp::kIn,
                                            {meshgate::StrCat("svc-", i % kSubjects)}),
                          Requirement::Make("k8s:io.kubernetes.pod.namespace",
                                            SelectorOp::kIn, {"default"})});
    PeerRule pr;
    pr.l3_present = pr.l4_present = true;
    pr.peers.push_back(Selector(
        {Requirement::Make("app", SelectorOp::kIn,
                           {meshgate::StrCat("client-", i % kClientSelectors)}),
         Requirement::Make("k8s:io.kubernetes.pod.namespace", SelectorOp::kIn,
                           {"default"})}));
    uint16_t port = uint16_t((int(i % kSubjects) == changed ? 20000 : 1000) + i / kClientSelectors);
    pr.ports.push_back({identity::kProtoTcp, port, port, ""});
    r.ingress.push_back(std::move(pr));
    r.has_ingress = true;
    ps[0].rules.push_back(std::move(r));
  }
  return ps;
}

// --- the raw baseline: IPv4 5-tuple, as l3fwd-acl / dpdk-test-acl ---
struct Ipv4Tuple {
  uint8_t proto;
  uint8_t pad[3];
  rte_be32_t src, dst;
  rte_be16_t sport, dport;
};
enum { kBProto, kBSrc, kBDst, kBSport, kBDport, kBNum };
RTE_ACL_RULE_DEF(BaselineRule, kBNum);
const rte_acl_field_def kBaselineDefs[kBNum] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, 1, kBProto, 0, offsetof(Ipv4Tuple, proto)},
    {RTE_ACL_FIELD_TYPE_MASK, 4, kBSrc, 1, offsetof(Ipv4Tuple, src)},
    {RTE_ACL_FIELD_TYPE_MASK, 4, kBDst, 2, offsetof(Ipv4Tuple, dst)},
    {RTE_ACL_FIELD_TYPE_RANGE, 2, kBSport, 3, offsetof(Ipv4Tuple, sport)},
    {RTE_ACL_FIELD_TYPE_RANGE, 2, kBDport, 3, offsetof(Ipv4Tuple, dport)},
};
uint32_t ClientAddr(uint32_t c) { return (10u << 24) | (1u << 16) | c; }
uint32_t ServerAddr(uint32_t s) { return (10u << 24) | (200u << 16) | s; }

rte_acl_ctx* BuildBaseline(uint32_t rules, int seq) {
  std::string name = meshgate::StrCat("mgbase", seq);
  rte_acl_param prm{};
  prm.name = name.c_str();
  prm.socket_id = SOCKET_ID_ANY;
  prm.rule_size = RTE_ACL_RULE_SZ(kBNum);
  prm.max_rule_num = rules;
  rte_acl_ctx* ctx = rte_acl_create(&prm);
  if (ctx == nullptr) return nullptr;
  std::vector<BaselineRule> rs(rules);
  for (uint32_t i = 0; i < rules; ++i) {
    auto& r = rs[i];
    std::memset(&r, 0, sizeof(r));
    r.data.category_mask = 1;
    r.data.priority = int32_t(RTE_ACL_MAX_PRIORITY - 1 - i);
    r.data.userdata = i + 1;
    r.field[kBProto].value.u8 = 6;
    r.field[kBProto].mask_range.u8 = 0xff;
    r.field[kBSrc].value.u32 = ClientAddr(i % kClientSelectors);
    r.field[kBSrc].mask_range.u32 = 32;
    r.field[kBDst].value.u32 = ServerAddr(i % kSubjects);
    r.field[kBDst].mask_range.u32 = 32;
    r.field[kBSport].value.u16 = 0;
    r.field[kBSport].mask_range.u16 = 65535;
    r.field[kBDport].value.u16 = uint16_t(1000 + i / kClientSelectors);
    r.field[kBDport].mask_range.u16 = uint16_t(1000 + i / kClientSelectors);
  }
  if (rte_acl_add_rules(ctx, reinterpret_cast<rte_acl_rule*>(rs.data()), rules) != 0) {
    rte_acl_free(ctx);
    return nullptr;
  }
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = kBNum;
  std::memcpy(cfg.defs, kBaselineDefs, sizeof(kBaselineDefs));
  if (rte_acl_build(ctx, &cfg) != 0) {
    rte_acl_free(ctx);
    return nullptr;
  }
  return ctx;
}

template <typename Fn>
double CyclesOnce(uint32_t flows, uint32_t burst, Fn&& classify_burst) {
  uint64_t t0 = rte_rdtsc_precise();
  for (uint32_t base = 0; base + burst <= flows; base += burst) classify_burst(base, burst);
  uint64_t t1 = rte_rdtsc_precise();
  return double(t1 - t0) / double(flows - flows % burst);
}

// Medians of `reps` runs of each function, interleaved run by run so that a
// noisy neighbour hurts every variant alike.
template <typename... Fn>
std::array<double, sizeof...(Fn)> InterleavedMedians(uint32_t flows, uint32_t burst, int reps,
                                                     Fn&&... fns) {
  std::array<std::vector<double>, sizeof...(Fn)> samples;
  for (int rep = 0; rep < reps; ++rep) {
    size_t i = 0;
    ((samples[i++].push_back(CyclesOnce(flows, burst, fns))), ...);
  }
  std::array<double, sizeof...(Fn)> out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = Median(samples[i]);
  return out;
}

}  // namespace

std::vector<BenchResult> RunClassifyBench(const BenchOptions& o) {
  std::vector<BenchResult> out;
  int seq = 0;
  for (auto [rules, idents] : o.cases) {
    std::string tag = meshgate::StrCat(rules, "rules_", idents, "ids");
    if (o.progress) {
      std::fprintf(stderr, "bench classify: %u rules, %u identities: preparing...\n", rules,
                   idents);
    }
    // A cluster allocates at most 65,535 identities (C<<16 layout), so a
    // large population spreads over the mesh's clusters, as it would.
    identity::Registry reg;
    constexpr uint32_t kPerCluster = 60000;
    bool ok = true;
    for (uint32_t j = 0; j < idents && ok; ++j) {
      Labels l = PodLabels(meshgate::StrCat("client-", j % kClientSelectors));
      l.Set({"k8s", "pod-template-hash", meshgate::StrCat(j)});  // distinct identities
      ok = reg.Allocate(2 + j / kPerCluster, l).ok();
    }
    CompileInput in;
    for (uint32_t s = 0; s < kSubjects && ok; ++s) {
      auto id = reg.Allocate(1, PodLabels(meshgate::StrCat("svc-", s)));
      ok = id.ok();
      if (ok) in.endpoints.push_back({*id, {}});
    }
    if (!ok) {
      std::fprintf(stderr, "bench classify: cannot allocate %u identities\n", idents);
      continue;
    }
    auto policies = MakePolicies(rules);
    in.policies = &policies;
    in.identities = &reg;
    in.options.allow_localhost = false;

    auto t0 = std::chrono::steady_clock::now();
    auto cp = Compile(in);
    double compile_ms = MsSince(t0);
    if (!cp.ok()) {
      std::fprintf(stderr, "compile failed: %s\n", std::string(cp.status().message()).c_str());
      continue;
    }
    t0 = std::chrono::steady_clock::now();
    auto table = AclTable::Build(*cp);
    double build_ms = MsSince(t0);
    if (!table.ok()) {
      std::fprintf(stderr, "build failed: %s\n", std::string(table.status().message()).c_str());
      continue;
    }
    // The same table after a change to svc-3's rules, built on it: one
    // context per changed partition beside the consolidated one, as a
    // policy change leaves it until the daemon consolidates.
    auto changed_policies = MakePolicies(rules, 3);
    in.policies = &changed_policies;
    in.previous = &*cp;
    auto changed_cp = Compile(in);
    if (!changed_cp.ok()) continue;
    auto changed = AclTable::Build(*changed_cp, -1, table->get());
    if (!changed.ok()) {
      std::fprintf(stderr, "build failed: %s\n", std::string(changed.status().message()).c_str());
      continue;
    }
    auto classes = IdentityClassTable::Build(*cp);
    auto hashed = HashIdentityClassTable::Build(*cp, idents + 1024);
    if (!classes.ok() || !hashed.ok()) {
      std::fprintf(stderr, "class table: %s\n", std::string((classes.ok() ? hashed.status() : classes.status()).message()).c_str());
      continue;
    }
    t0 = std::chrono::steady_clock::now();
    rte_acl_ctx* base = BuildBaseline(rules, seq++);
    double base_build_ms = MsSince(t0);
    if (base == nullptr) {
      std::fprintf(stderr, "baseline build failed\n");
      continue;
    }

    // Traffic: flows that hit rules (same mix for both tables).
    std::mt19937 rng(42);
    std::vector<uint32_t> src_ids(o.flows), subj(o.flows);
    std::vector<uint16_t> ports(o.flows);
    std::vector<AclKey> keys(o.flows);
    std::vector<const AclKey*> kp(o.flows);
    std::vector<Ipv4Tuple> tuples(o.flows);
    std::vector<const uint8_t*> tp(o.flows);
    const auto& all = reg.all();
    std::vector<NumericIdentity> client_ids;
    for (const auto& [id, l] : all) {
      if (id >= reg.layout().MinId(2) && client_ids.size() < idents) client_ids.push_back(id);
    }
    for (uint32_t i = 0; i < o.flows; ++i) {
      uint32_t rule = rng() % rules;
      uint32_t c = rule % kClientSelectors;
      // an identity behind client selector c
      uint32_t j = c + kClientSelectors * (rng() % std::max<uint32_t>(1, idents / kClientSelectors));
      if (j >= client_ids.size()) j = c % client_ids.size();
      src_ids[i] = client_ids[j];
      subj[i] = cp->subject_class_of_endpoint[rule % kSubjects];
      ports[i] = uint16_t(1000 + rule / kClientSelectors);
      MakeAclKey(keys[i], identity::kProtoTcp, subj[i], cp->PeerClass(src_ids[i]), ports[i],
                 Direction::kIngress);
      kp[i] = &keys[i];
      auto& t = tuples[i];
      std::memset(&t, 0, sizeof(t));
      t.proto = 6;
      t.src = rte_cpu_to_be_32(ClientAddr(c));
      t.dst = rte_cpu_to_be_32(ServerAddr(rule % kSubjects));
      t.sport = rte_cpu_to_be_16(uint16_t(30000 + rng() % 30000));
      t.dport = rte_cpu_to_be_16(ports[i]);
      tp[i] = reinterpret_cast<const uint8_t*>(&t);
    }
    // Sanity: every flow must be allowed by both tables, or the numbers lie.
    {
      std::vector<PolicyResult> res(o.flows);
      table.value()->Classify(kp.data(), o.flows, res.data());
      uint32_t allowed = 0;
      for (auto& r : res) allowed += r.rule_id != 0;
      if (allowed != o.flows) {
        std::fprintf(stderr, "bench classify: only %u of %u flows matched a rule\n", allowed,
                     o.flows);
      }
    }
    if (o.progress) std::fprintf(stderr, "bench classify: %s: measuring...\n", tag.c_str());
    std::vector<PolicyResult> res(o.burst);
    uint32_t bres[64];
    std::vector<AclKey> scratch(o.burst);
    std::vector<const AclKey*> sp(o.burst);
    for (uint32_t i = 0; i < o.burst; ++i) sp[i] = &scratch[i];
    uint32_t cls[64];
    auto keys_from = [&](uint32_t b, uint32_t n) {
      for (uint32_t i = 0; i < n; ++i) {
        MakeAclKey(scratch[i], identity::kProtoTcp, subj[b + i], cls[i], ports[b + i],
                   Direction::kIngress);
      }
    };
    auto [ours, baseline, with_lookup, with_hash_lookup, after_change] = InterleavedMedians(
        o.flows, o.burst, o.repetitions,
        [&](uint32_t b, uint32_t n) { table.value()->Classify(kp.data() + b, n, res.data()); },
        [&](uint32_t b, uint32_t n) { rte_acl_classify(base, tp.data() + b, bres, n, 1); },
        [&](uint32_t b, uint32_t n) {
          classes.value()->LookupBulk(src_ids.data() + b, n, cls);
          keys_from(b, n);
          table.value()->Classify(sp.data(), n, res.data());
        },
        [&](uint32_t b, uint32_t n) {
          hashed.value()->LookupBulk(src_ids.data() + b, n, cls);
          keys_from(b, n);
          table.value()->Classify(sp.data(), n, res.data());
        },
        [&](uint32_t b, uint32_t n) { changed.value()->Classify(kp.data() + b, n, res.data()); });
    std::string bl = meshgate::StrCat("raw rte_acl ipv4 5-tuple, ", rules, " rules");
    out.push_back({"classify_cycles_per_packet_" + tag, ours, "cycles/packet", bl, baseline});
    out.push_back({"classify_ratio_to_raw_" + tag, ours / baseline, "ratio", bl, 1.0});
    out.push_back({"classify_after_one_subject_changed_cycles_per_packet_" + tag, after_change,
                   "cycles/packet",
                   meshgate::StrCat("one consolidated context (", changed.value()->num_contexts(),
                                    " contexts after the change)"),
                   ours});
    out.push_back({"identity_lookup_and_classify_cycles_per_packet_" + tag, with_lookup,
                   "cycles/packet", "the same with an rte_hash identity table", with_hash_lookup});
    out.push_back({"compile_ms_" + tag, compile_ms, "ms", "", 0});
    out.push_back({"acl_build_ms_" + tag, build_ms, "ms", "raw rte_acl build, same rule count",
                   base_build_ms});
    out.push_back({"compile_and_build_ms_" + tag, compile_ms + build_ms, "ms", "", 0});
    out.push_back({"acl_rules_" + tag, double(cp->rules.size()), "rules", "", 0});
    out.push_back({"peer_classes_" + tag, double(cp->num_peer_classes), "classes", "", 0});
    out.push_back({"acl_memory_" + tag, double(table.value()->memory_bytes()), "bytes", "", 0});
    out.push_back({"identity_table_memory_" + tag, double(classes.value()->memory_bytes()),
                   "bytes", "", 0});
    rte_acl_free(base);
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace meshgate::classifier
