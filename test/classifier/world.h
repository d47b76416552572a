// A small mesh for classifier tests: endpoints with identities, policies from
// YAML, and a verdict computed twice, by the model (Explain) and by the
// compiled rte_acl table, which must agree.
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "classifier/acl_table.h"
#include "classifier/compile.h"
#include "classifier/explain.h"
#include "control/manifest.h"
#include "dataplane/eal.h"
#include "identity/endpoint.h"
#include "identity/ipcache.h"
#include "identity/registry.h"

namespace meshgate::test {

using classifier::Direction;
using classifier::PolicyReason;
using classifier::PolicyResult;
using classifier::Verdict;
using identity::NumericIdentity;

struct World {
  std::string cluster = "cluster1";  // the enforcing instance's cluster
  uint32_t cluster_id = 1;
  bool policy_default_local_cluster = false;
  classifier::CompileOptions opts;
  identity::Registry reg;
  identity::IpCache ipcache;
  std::vector<classifier::Policy> policies;

  struct Ep {
    identity::EndpointSpec spec;
    NumericIdentity id;
    identity::Labels labels;
  };
  std::map<std::string, Ep> eps;  // "cluster1/frontend"

  // Adds an endpoint; `cluster` "" = the local cluster.
  NumericIdentity Add(const std::string& name, std::map<std::string, std::string> labels,
                      std::string ns = "default", std::string cluster = "",
                      std::vector<identity::NamedPort> named = {},
                      std::map<std::string, std::string> ns_labels = {},
                      std::string sa = "") {
    if (cluster.empty()) cluster = this->cluster;
    // "clusterN" allocates in cluster N's range (as every instance of a mesh
    // agrees), so two Worlds adding the same endpoints agree on identities.
    uint32_t cid = cluster == this->cluster ? cluster_id
                   : cluster.starts_with("cluster") ? uint32_t(std::stoul(cluster.substr(7)))
                                                    : 3;
    Ep e;
    e.spec.name = name;
    e.spec.ns = ns;
    e.spec.cluster = cluster;
    e.spec.labels = std::move(labels);
    e.spec.named_ports = std::move(named);
    e.spec.namespace_labels = std::move(ns_labels);
    e.spec.service_account = sa;
    e.labels = identity::IdentityLabels(e.spec);
    auto id = reg.Allocate(cid, e.labels);
    REQUIRE(id.ok());
    e.id = *id;
    eps[cluster + "/" + name] = e;
    dirty_ = true;
    return e.id;
  }

  // Parses and applies manifests (replacing same-named policies). Fails the
  // test on any diagnostic.
  void Apply(const std::string& yaml) {
    auto diags = TryApply(yaml);
    for (const auto& d : diags) UNSCOPED_INFO(d.ToString());
    REQUIRE(diags.empty());
  }
  std::vector<classifier::Diagnostic> TryApply(const std::string& yaml) {
    classifier::ParseContext ctx;
    ctx.file = "test.yaml";
    ctx.cluster_name = cluster;
    ctx.policy_default_local_cluster = policy_default_local_cluster;
    control::Manifests m;
    std::vector<classifier::Diagnostic> diags;
    control::ParseManifests(yaml, ctx, m, diags);
    for (auto& p : m.policies) {
      std::erase_if(policies, [&](const auto& q) { return q.SameObject(p); });
      policies.push_back(std::move(p));
    }
    dirty_ = true;
    return diags;
  }

  void SetOptions(classifier::CompileOptions o) {
    opts = o;
    dirty_ = true;
  }

  const Ep& Get(const std::string& name) const {
    auto it = eps.find(name.find('/') == std::string::npos ? cluster + "/" + name : name);
    REQUIRE(it != eps.end());
    return it->second;
  }

  // The compiled policy for the local cluster's endpoints (recompiled when
  // anything changed), including CIDR identities.
  const classifier::CompiledPolicy& Compiled() {
    if (dirty_) Recompile();
    return *compiled_;
  }

  // The deployed table (automatic partitions) of the latest compilation,
  // built on the one before it.
  const classifier::AclTable& Table() {
    Compiled();
    REQUIRE(table_ != nullptr);
    return *table_;
  }

  // Verdict of `dir` at `subject` (a local endpoint) for traffic with `peer`.
  PolicyResult Check(Direction dir, const std::string& subject, NumericIdentity peer_id,
                     uint8_t proto, uint16_t port) {
    const Ep& s = Get(subject);
    const identity::Labels* pl = reg.Find(peer_id);
    REQUIRE(pl != nullptr);
    classifier::FlowQuery q;
    q.dir = dir;
    q.subject = s.labels;
    q.subject_named_ports = s.spec.named_ports;
    q.peer_id = peer_id;
    q.peer = *pl;
    q.proto = proto;
    q.port = port;
    last_explain = classifier::Explain(policies, opts, q, MeshNamedPorts());
    if (dataplane::EalInitialized()) {
      const auto& cp = Compiled();
      uint32_t subj = 0;
      for (size_t i = 0; i < local_.size(); ++i) {
        if (local_[i] == &s) subj = cp.subject_class_of_endpoint[i];
      }
      classifier::AclKey k;
      classifier::MakeAclKey(k, proto, subj, classes_->Lookup(peer_id), port, dir);
      const classifier::AclKey* kp = &k;
      INFO("explain: " << last_explain.ToString());
      // The table as deployed, and one forced into every partition, built
      // on the previous one (acl_table.h): both agree with the model.
      for (const classifier::AclTable* t : {table_.get(), partitioned_.get()}) {
        PolicyResult r;
        t->Classify(&kp, 1, &r);
        INFO("partitions: " << t->num_partitions());
        CHECK(int(r.verdict) == int(last_explain.result.verdict));
        CHECK(int(r.reason) == int(last_explain.result.reason));
        CHECK(r.rule_id == last_explain.result.rule_id);
      }
    }
    return last_explain.result;
  }
  PolicyResult Ingress(const std::string& from, const std::string& to, uint8_t proto = 6,
                       uint16_t port = 80) {
    return Check(Direction::kIngress, to, Get(from).id, proto, port);
  }
  PolicyResult IngressFromId(NumericIdentity from, const std::string& to, uint8_t proto = 6,
                             uint16_t port = 80) {
    return Check(Direction::kIngress, to, from, proto, port);
  }
  PolicyResult Egress(const std::string& from, const std::string& to, uint8_t proto = 6,
                      uint16_t port = 80) {
    return Check(Direction::kEgress, from, Get(to).id, proto, port);
  }
  PolicyResult EgressToId(const std::string& from, NumericIdentity to, uint8_t proto = 6,
                          uint16_t port = 80) {
    return Check(Direction::kEgress, from, to, proto, port);
  }
  // The identity an address resolves to (CIDR identities included).
  NumericIdentity IdentityOf(const std::string& addr) {
    Compiled();
    auto a = identity::IpAddr::Parse(addr);
    REQUIRE(a.ok());
    return ipcache.Lookup(*a).id;
  }

  std::vector<identity::NamedPort> MeshNamedPorts() const {
    std::vector<identity::NamedPort> v;
    for (const auto& [n, e] : eps) v.insert(v.end(), e.spec.named_ports.begin(), e.spec.named_ports.end());
    return v;
  }

  // Local endpoints in the order the compiler saw them (subject classes
  // are per position).
  const std::vector<const Ep*>& LocalInCompileOrder() {
    Compiled();
    return local_;
  }

  classifier::Explanation last_explain;

 private:
  void Recompile() {
    std::set<identity::Prefix> prefixes;
    for (const auto& p : policies)
      for (const auto& r : p.rules)
        for (auto* sec : {&r.ingress, &r.ingress_deny, &r.egress, &r.egress_deny})
          for (const auto& pr : *sec) prefixes.insert(pr.cidrs.begin(), pr.cidrs.end());
    REQUIRE(ipcache.SyncCidrIdentities(prefixes, reg).ok());
    classifier::CompileInput in;
    in.policies = &policies;
    in.identities = &reg;
    in.options = opts;
    in.mesh_named_ports = MeshNamedPorts();
    local_.clear();
    for (const auto& [n, e] : eps) {
      if (e.spec.cluster != cluster) continue;
      local_.push_back(&e);
      in.endpoints.push_back({e.id, e.spec.named_ports});
    }
    // Every recompilation starts from the previous one, as the agent's do,
    // so the semantics tests check the reuse of peer classes (compile.h)
    // and of ACL partitions too.
    in.previous = compiled_.get();
    auto cp = classifier::Compile(in);
    REQUIRE(cp.ok());
    compiled_ = std::make_unique<classifier::CompiledPolicy>(std::move(*cp));
    if (dataplane::EalInitialized()) {
      auto t = classifier::AclTable::Build(*compiled_, -1, table_.get());
      REQUIRE(t.ok());
      table_ = std::move(*t);
      auto tp = classifier::AclTable::Build(*compiled_, -1, partitioned_.get(),
                                            classifier::AclTable::kMaxPartitions);
      REQUIRE(tp.ok());
      partitioned_ = std::move(*tp);
      auto c = classifier::IdentityClassTable::Build(*compiled_);
      REQUIRE(c.ok());
      classes_ = std::move(*c);
    }
    dirty_ = false;
  }

  bool dirty_ = true;
  std::vector<const Ep*> local_;
  std::unique_ptr<classifier::CompiledPolicy> compiled_;
  std::unique_ptr<classifier::AclTable> table_, partitioned_;
  std::unique_ptr<classifier::IdentityClassTable> classes_;
};

inline bool Allowed(const PolicyResult& r) { return r.verdict == Verdict::kForwarded; }
inline bool Denied(const PolicyResult& r) {
  return r.verdict == Verdict::kDropped && r.reason == PolicyReason::kPolicyDenied;
}
inline bool DeniedByDenyRule(const PolicyResult& r) {
  return r.verdict == Verdict::kDropped && r.reason == PolicyReason::kPolicyDeny;
}

}  // namespace meshgate::test
