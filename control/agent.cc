#include "control/agent.h"

#include <rte_ether.h>

#include <algorithm>
#include <deque>

#include "control/feed.h"
#include "control/manifest.h"
#include "identity/endpoint.h"
#include "identity/numeric.h"
#include "identity/strutil.h"
#include "lb/backends.h"
#include "lb/maglev.h"

namespace meshgate::control {

namespace {

absl::StatusOr<uint8_t> ParseProto(const std::string& p) {
  if (p.empty() || p == "TCP") return identity::kProtoTcp;
  if (p == "UDP") return identity::kProtoUdp;
  if (p == "SCTP") return identity::kProtoSctp;
  return absl::InvalidArgumentError(StrCat("unknown protocol \"", p, "\""));
}

std::string_view ProtoName(uint8_t p) {
  switch (p) {
    case identity::kProtoUdp: return "UDP";
    case identity::kProtoSctp: return "SCTP";
    default: return "TCP";
  }
}

absl::StatusOr<std::vector<identity::NamedPort>> ParseNamedPorts(
    const google::protobuf::RepeatedPtrField<mesh::v1::NamedPort>& in) {
  std::vector<identity::NamedPort> out;
  for (const auto& np : in) {
    auto proto = ParseProto(np.protocol());
    if (!proto.ok()) return proto.status();
    if (np.port() == 0 || np.port() > 65535 || np.name().empty()) {
      return absl::InvalidArgumentError(StrCat("bad named port \"", np.name(), "\":", np.port()));
    }
    out.push_back({np.name(), uint16_t(np.port()), *proto});
  }
  return out;
}

absl::StatusOr<lb::BackendState> ParseState(const std::string& s) {
  if (s.empty() || s == "active") return lb::BackendState::kActive;
  if (s == "terminating") return lb::BackendState::kTerminating;
  if (s == "terminating-not-serving") return lb::BackendState::kTerminatingNotServing;
  if (s == "quarantined") return lb::BackendState::kQuarantined;
  if (s == "maintenance") return lb::BackendState::kMaintenance;
  return absl::InvalidArgumentError(StrCat("unknown backend state \"", s, "\""));
}

lb::Affinity ParseAffinity(const std::string& s) {
  if (s == "local") return lb::Affinity::kLocal;
  if (s == "remote") return lb::Affinity::kRemote;
  return lb::Affinity::kNone;
}

// An ipcache entry whose change the in-place path can apply: named ports
// feed the egress rules (compile.h), CIDR-policy entries the compilation.
bool InPlaceEntry(const identity::IpCacheEntry& e) {
  return e.named_ports.empty() && !e.from_cidr_policy;
}

}  // namespace

Agent::Agent(AgentConfig config, dataplane::Instance& instance)
    : config_(std::move(config)), inst_(instance) {}

absl::Status Agent::Apply(const mesh::v1::Update& u, FeedSender& from) {
  using U = mesh::v1::Update;
  // Revisions only go forward within one sender's session; a hello starts
  // a new session (a restarted controller counts from 1 again).
  if (u.has_hello()) from.revision = 0;
  if (u.revision() != 0 && u.revision() < from.revision) {
    return absl::InvalidArgumentError(
        StrCat("revision ", u.revision(), " is older than ", from.revision));
  }
  absl::Status st;
  switch (u.body_case()) {
    case U::kHello: {
      const auto& h = u.hello();
      if (h.protocol_version() != kProtocolVersion) {
        return absl::FailedPreconditionError(StrCat("protocol version ", h.protocol_version(),
                                                    " (this meshgate speaks ", kProtocolVersion,
                                                    ")"));
      }
      if (h.cluster_id() > reg_.layout().cluster_id_max()) {
        return absl::InvalidArgumentError(StrCat("hello: cluster id ", h.cluster_id(),
                                                 " out of range"));
      }
      from.cluster_id = h.cluster_id();
      from.hello = true;
      break;
    }
    case U::kClusterConfig: st = ApplyConfig(u.cluster_config()); break;
    case U::kIdentityUpsert: st = ApplyIdentity(u.identity_upsert(), from.cluster_id); break;
    case U::kIdentityDelete: {
      uint32_t id = u.identity_delete().id();
      if (!reg_.Find(id)) return absl::NotFoundError(StrCat("identity ", id, " is not known"));
      st = reg_.Remove(id);
      break;
    }
    case U::kIpcacheUpsert: st = ApplyIpcache(u.ipcache_upsert(), from.cluster_id); break;
    case U::kIpcacheDelete: {
      auto p = identity::Prefix::Parse(u.ipcache_delete().prefix());
      if (!p.ok()) return p.status();
      if (auto it = ipcache_.entries().find(*p); it != ipcache_.entries().end() &&
                                                 !InPlaceEntry(it->second)) {
        full_commit_ = true;
      }
      if (!ipcache_.Remove(*p)) {
        return absl::NotFoundError(StrCat("ipcache: ", p->ToString(), " is not known"));
      }
      break;
    }
    case U::kEndpointAttach: st = ApplyEndpoint(u.endpoint_attach()); break;
    case U::kEndpointDetach: {
      std::string key = StrCat(u.endpoint_detach().namespace_(), "/", u.endpoint_detach().name());
      if (endpoints_.erase(key) == 0) {
        return absl::NotFoundError(StrCat("endpoint ", key, " is not attached"));
      }
      break;
    }
    case U::kServiceUpsert: st = ApplyService(u.service_upsert()); break;
    case U::kServiceDelete: {
      const auto& d = u.service_delete();
      if (cluster_services_.erase({d.cluster(), d.namespace_(), d.name()}) == 0) {
        return absl::NotFoundError(StrCat("service ", d.cluster(), "/", d.namespace_(), "/",
                                          d.name(), " is not known"));
      }
      break;
    }
    case U::kManifestApply:
      st = ApplyManifest(u.manifest_apply());
      if (st.ok()) manifest_log_.push_back(u);
      break;
    case U::kManifestDelete: {
      const auto& d = u.manifest_delete();
      size_t before = policies_.size() + services_.size();
      std::erase_if(policies_, [&](const classifier::Policy& p) {
        return classifier::PolicyKindName(p.kind) == d.kind() && p.name == d.name() &&
               (p.ns == d.namespace_() ||
                p.kind == classifier::PolicyKind::kCiliumClusterwideNetworkPolicy);
      });
      if (d.kind() == "Service") {
        std::erase_if(services_, [&](const lb::Service& s) {
          return s.name == d.name() && s.ns == d.namespace_();
        });
      }
      if (policies_.size() + services_.size() == before) {
        return absl::NotFoundError(StrCat(d.kind(), " ", d.namespace_(), "/", d.name(),
                                          " is not applied"));
      }
      manifest_log_.push_back(u);
      break;
    }
    case U::kSyncStart:
      syncing_ = true;
      seen_ids_.clear();
      seen_prefixes_.clear();
      seen_services_.clear();
      seen_endpoints_.clear();
      break;
    case U::kSyncDone:
      if (!syncing_) return absl::FailedPreconditionError("sync-done without sync-start");
      EndSync();
      break;
    case U::BODY_NOT_SET:
      return absl::InvalidArgumentError("update without a known body (unknown message type)");
  }
  if (!st.ok()) return st;
  if (from.persistent) {
    if (u.has_identity_upsert()) pinned_ids_.insert(u.identity_upsert().id());
    if (u.has_ipcache_upsert()) pinned_prefixes_.insert(*identity::Prefix::Parse(u.ipcache_upsert().prefix()));
    if (u.has_endpoint_attach()) {
      pinned_endpoints_.insert(StrCat(u.endpoint_attach().namespace_(), "/", u.endpoint_attach().name()));
    }
  }
  if (u.revision() != 0) revision_ = from.revision = u.revision();
  switch (u.body_case()) {
    case U::kIdentityUpsert: changed_ids_.insert(u.identity_upsert().id()); break;
    case U::kIdentityDelete: changed_ids_.insert(u.identity_delete().id()); break;
    case U::kIpcacheUpsert:
      changed_prefixes_.insert(*identity::Prefix::Parse(u.ipcache_upsert().prefix()));
      break;
    case U::kIpcacheDelete:
      changed_prefixes_.insert(*identity::Prefix::Parse(u.ipcache_delete().prefix()));
      break;
    case U::kHello:
    case U::kSyncStart:
      break;
    default:
      full_commit_ = true;  // policies, endpoints, services, config, a resync's removals
  }
  dirty_ = true;
  return absl::OkStatus();
}

absl::Status Agent::ApplyConfig(const mesh::v1::ClusterConfig& m) {
  if (!m.cluster().empty() && m.cluster() != config_.cluster) {
    return absl::InvalidArgumentError(StrCat("cluster config for \"", m.cluster(),
                                             "\" sent to cluster \"", config_.cluster, "\""));
  }
  if (m.cluster_id() != 0 && m.cluster_id() != config_.cluster_id) {
    return absl::InvalidArgumentError(StrCat("cluster config for cluster id ", m.cluster_id(),
                                             " sent to cluster id ", config_.cluster_id));
  }
  classifier::CompileOptions o = opts_;
  const std::string& e = m.enforcement_mode();
  if (e.empty() || e == "default") o.enforcement = classifier::EnforcementMode::kDefault;
  else if (e == "always") o.enforcement = classifier::EnforcementMode::kAlways;
  else if (e == "never") o.enforcement = classifier::EnforcementMode::kNever;
  else return absl::InvalidArgumentError(StrCat("unknown enforcement mode \"", e, "\""));
  o.audit = m.policy_audit_mode();
  opts_ = o;
  if (m.policy_default_local_cluster() != policy_default_local_cluster_) {
    // The option shapes how policies parse: parse them again.
    policy_default_local_cluster_ = m.policy_default_local_cluster();
    policies_.clear();
    services_.clear();
    for (const auto& u : manifest_log_) {
      if (u.has_manifest_apply()) {
        if (auto st = ApplyManifest(u.manifest_apply()); !st.ok()) return st;
      } else {
        const auto& d = u.manifest_delete();
        std::erase_if(policies_, [&](const classifier::Policy& p) {
          return classifier::PolicyKindName(p.kind) == d.kind() && p.name == d.name();
        });
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Agent::ApplyManifest(const mesh::v1::ManifestApply& m) {
  classifier::ParseContext ctx;
  ctx.file = m.file().empty() ? "<mesh feed>" : m.file();
  ctx.cluster_name = config_.cluster;
  ctx.policy_default_local_cluster = policy_default_local_cluster_;
  Manifests out;
  std::vector<classifier::Diagnostic> diags;
  if (!ParseManifests(m.yaml(), ctx, out, diags, m.line_offset())) {
    std::string msg;
    for (const auto& d : diags) StrAppend(&msg, msg.empty() ? "" : "\n", d.ToString());
    return absl::InvalidArgumentError(msg);
  }
  for (auto& p : out.policies) {
    std::erase_if(policies_, [&](const auto& q) { return q.SameObject(p); });
    policies_.push_back(std::move(p));
  }
  for (auto& s : out.services) {
    std::erase_if(services_, [&](const auto& q) { return q.ns == s.ns && q.name == s.name; });
    services_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

absl::Status Agent::ApplyIdentity(const mesh::v1::IdentityUpsert& m, uint32_t sender) {
  uint32_t id = m.id();
  if (id < identity::kMinimalNumericIdentity || identity::IsLocalScope(id)) {
    return absl::InvalidArgumentError(
        StrCat("identity ", id, ": reserved and node-local identities are not taken from the mesh"));
  }
  if (sender != 0 && !reg_.layout().AcceptFromCluster(id, sender)) {
    return absl::PermissionDeniedError(StrCat("identity ", id, " is outside cluster ",
                                              sender, "'s range"));
  }
  identity::Labels labels;
  for (const auto& t : m.labels()) {
    auto l = identity::Label::Parse(t);
    if (!l.ok()) return absl::InvalidArgumentError(StrCat("identity ", id, ": ", l.status().message()));
    labels.Set(*l);
  }
  if (labels.empty()) return absl::InvalidArgumentError(StrCat("identity ", id, " has no labels"));
  if (auto st = reg_.Upsert(id, labels); !st.ok()) return st;
  if (syncing_) seen_ids_.insert(id);
  return absl::OkStatus();
}

absl::Status Agent::ApplyIpcache(const mesh::v1::IpcacheUpsert& m, uint32_t sender) {
  auto p = identity::Prefix::Parse(m.prefix());
  if (!p.ok()) return p.status();
  uint32_t id = m.identity();
  if (id == 0) return absl::InvalidArgumentError(StrCat("ipcache ", m.prefix(), ": identity 0"));
  if (sender != 0 && !reg_.layout().AcceptFromCluster(id, sender)) {
    return absl::PermissionDeniedError(StrCat("ipcache ", m.prefix(), ": identity ", id,
                                              " is outside cluster ", sender,
                                              "'s range"));
  }
  identity::IpCacheEntry e;
  // A remote node's claim of the host identity means remote-node here
  // (Cilium pkg/ipcache/kvstore.go).
  e.id = (id == identity::reserved::kHost && m.cluster() != config_.cluster)
             ? identity::reserved::kRemoteNode
             : id;
  if (!m.tunnel_endpoint().empty()) {
    auto t = identity::IpAddr::Parse(m.tunnel_endpoint());
    if (!t.ok()) return t.status();
    e.tunnel_endpoint = *t;
  }
  e.source_cluster = reg_.layout().ClusterOf(id);
  auto np = ParseNamedPorts(m.named_ports());
  if (!np.ok()) return np.status();
  e.named_ports = std::move(*np);
  if (auto it = ipcache_.entries().find(*p); !InPlaceEntry(e) ||
      (it != ipcache_.entries().end() && !InPlaceEntry(it->second))) {
    full_commit_ = true;
  }
  ipcache_.Upsert(*p, std::move(e));
  if (syncing_) seen_prefixes_.insert(*p);
  return absl::OkStatus();
}

absl::Status Agent::ApplyEndpoint(const mesh::v1::EndpointAttach& m) {
  std::string key = StrCat(m.namespace_(), "/", m.name());
  if (m.name().empty()) return absl::InvalidArgumentError("endpoint without a name");
  LocalEp e;
  e.ns = m.namespace_();
  e.name = m.name();
  e.identity = m.identity();
  if (reg_.Find(e.identity) == nullptr) {
    return absl::FailedPreconditionError(StrCat("endpoint ", key, ": identity ", e.identity,
                                                " is not known (send it first)"));
  }
  if (m.port() >= inst_.num_ports() || int(m.port()) == config_.fabric_port ||
      int(m.port()) == config_.uplink_port) {
    return absl::InvalidArgumentError(StrCat("endpoint ", key, ": port ", m.port(),
                                             " is not an endpoint port"));
  }
  for (const auto& [k, o] : endpoints_) {
    if (k != key && o.port_index == m.port()) {
      return absl::AlreadyExistsError(StrCat("endpoint ", key, ": port ", m.port(),
                                             " already serves ", k));
    }
  }
  e.port_index = uint16_t(m.port());
  if (rte_ether_unformat_addr(m.mac().c_str(), &e.mac) != 0) {
    return absl::InvalidArgumentError(StrCat("endpoint ", key, ": bad MAC \"", m.mac(), "\""));
  }
  if (m.addresses().empty()) {
    return absl::InvalidArgumentError(StrCat("endpoint ", key, " has no address"));
  }
  for (const auto& a : m.addresses()) {
    auto ip = identity::IpAddr::Parse(a);
    if (!ip.ok()) return absl::InvalidArgumentError(StrCat("endpoint ", key, ": ", ip.status().message()));
    e.addrs.push_back(*ip);
  }
  auto np = ParseNamedPorts(m.named_ports());
  if (!np.ok()) return np.status();
  e.named_ports = std::move(*np);
  endpoints_[key] = std::move(e);
  if (syncing_) seen_endpoints_.insert(key);
  return absl::OkStatus();
}

absl::Status Agent::ApplyService(const mesh::v1::ClusterServiceUpsert& m) {
  if (m.name().empty() || m.cluster().empty()) {
    return absl::InvalidArgumentError("cluster service without a cluster or a name");
  }
  for (const auto& b : m.backends()) {
    if (auto a = identity::IpAddr::Parse(b.address()); !a.ok()) return a.status();
    if (auto s = ParseState(b.state()); !s.ok()) return s.status();
    for (const auto& pc : b.ports()) {
      if (auto p = ParseProto(pc.protocol()); !p.ok()) return p.status();
      if (pc.port() == 0 || pc.port() > 65535) {
        return absl::InvalidArgumentError(StrCat("backend ", b.address(), ": port ", pc.port()));
      }
    }
  }
  SvcKey k{m.cluster(), m.namespace_(), m.name()};
  cluster_services_[k] = m;
  if (syncing_) seen_services_.insert(k);
  return absl::OkStatus();
}

void Agent::EndSync() {
  syncing_ = false;
  synced_ = true;
  std::vector<uint32_t> gone;
  for (const auto& [id, l] : reg_.all()) {
    if (id >= identity::kMinimalNumericIdentity && !identity::IsLocalScope(id) &&
        !seen_ids_.contains(id) && !pinned_ids_.contains(id)) {
      gone.push_back(id);
    }
  }
  for (uint32_t id : gone) (void)reg_.Remove(id);
  std::vector<identity::Prefix> stale;
  for (const auto& [p, e] : ipcache_.entries()) {
    if (!e.from_cidr_policy && !seen_prefixes_.contains(p) && !pinned_prefixes_.contains(p)) {
      stale.push_back(p);
    }
  }
  for (const auto& p : stale) ipcache_.Remove(p);
  std::erase_if(cluster_services_, [&](const auto& kv) { return !seen_services_.contains(kv.first); });
  std::erase_if(endpoints_, [&](const auto& kv) {
    return !seen_endpoints_.contains(kv.first) && !pinned_endpoints_.contains(kv.first);
  });
}

std::vector<dataplane::ServiceSpec> Agent::BuildServices() const {
  static const lb::MaglevSeed seeds = *lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed);
  const uint32_t seed = seeds.murmur;
  std::vector<dataplane::ServiceSpec> out;
  for (const auto& s : services_) {
    // Every cluster's backends of this service that this cluster uses.
    struct Cand {
      identity::IpAddr addr;
      const mesh::v1::Backend* b;
      lb::BackendInfo info;
    };
    std::vector<Cand> cands;
    // Without the mesh's word on this cluster's backends, they are the local
    // endpoints the selector matches (as the endpoint controller would list
    // them): a standalone daemon's Services work too.
    std::deque<mesh::v1::Backend> derived;
    if (!cluster_services_.contains({config_.cluster, s.ns, s.name}) && !s.selector.empty()) {
      for (const auto& [key, e] : endpoints_) {
        const identity::Labels* l = reg_.Find(e.identity);
        if (e.ns != s.ns || l == nullptr) continue;
        bool match = true;
        for (const auto& [k, v] : s.selector) {
          const identity::Label* x = l->Find(k);
          match = match && x != nullptr && x->source == "k8s" && x->value == v;
        }
        if (!match) continue;
        for (const auto& a : e.addrs) {
          auto& b = derived.emplace_back();
          b.set_address(a.ToString());
          b.set_cluster(config_.cluster);
          b.set_name(key);
          for (const auto& sp : s.ports) {
            uint16_t port = sp.target_port ? sp.target_port : sp.port;
            if (!sp.target_port_name.empty()) {  // a named targetPort: the endpoint's port
              port = 0;
              for (const auto& np : e.named_ports) {
                if (np.name == sp.target_port_name && np.proto == sp.proto) port = np.port;
              }
              if (port == 0) continue;
            }
            auto* pc = b.add_ports();
            pc->set_name(sp.name);
            pc->set_port(port);
            pc->set_protocol(std::string(ProtoName(sp.proto)));
          }
          cands.push_back({a, &b, {}});
        }
      }
    }
    for (const auto& [k, cs] : cluster_services_) {
      const auto& [cluster, ns, name] = k;
      if (ns != s.ns || name != s.name) continue;
      bool remote = cluster != config_.cluster;
      if (remote) {
        lb::GlobalServiceConfig rc;
        rc.global = cs.include_external();
        rc.shared = cs.shared();
        rc.affinity = ParseAffinity(cs.affinity());
        if (!lb::UsesRemoteBackends(s.global, rc)) continue;
      }
      for (const auto& b : cs.backends()) {
        Cand c{*identity::IpAddr::Parse(b.address()), &b, {}};
        c.info.remote = remote;
        c.info.state = *ParseState(b.state());
        c.info.unhealthy = b.unhealthy();
        cands.push_back(c);
      }
    }
    bool maglev = false;
    if (auto it = s.annotations.find("service.cilium.io/lb-algorithm"); it != s.annotations.end()) {
      maglev = it->second == "maglev";
    }
    for (const auto& vip : s.frontends) {
      for (const auto& sp : s.ports) {
        std::vector<lb::BackendInfo> infos;
        std::vector<dataplane::ServiceBackendSpec> bes;
        for (const auto& c : cands) {
          if (c.addr.family != vip.family) continue;
          for (const auto& pc : c.b->ports()) {
            if (pc.name() != sp.name || *ParseProto(pc.protocol()) != sp.proto) continue;
            infos.push_back(c.info);
            bes.push_back({c.addr, uint16_t(pc.port())});
            break;
          }
        }
        dataplane::ServiceSpec spec;
        spec.vip = vip;
        spec.port = sp.port;
        spec.proto = sp.proto;
        if (s.session_affinity_client_ip) spec.affinity_timeout_s = s.session_affinity_timeout_s;
        for (size_t i : lb::ServingBackends(infos, lb::SelectBackends(infos, s.global))) {
          spec.backends.push_back(bes[i]);
        }
        // Maglev for north-south frontends only, as Cilium (lb/service.h).
        const bool east_west =
            std::find(s.cluster_ips.begin(), s.cluster_ips.end(), vip) != s.cluster_ips.end();
        if (maglev && !east_west && !spec.backends.empty()) {
          std::vector<std::string> keys;
          for (const auto& b : spec.backends) {
            keys.push_back(lb::MaglevBackendKey(b.addr, b.port, ProtoName(sp.proto)));
          }
          spec.maglev = lb::MaglevTable(keys, lb::kDefaultMaglevTableSize, seed);
          spec.hash_seed_v4 = seeds.jhash_v4;
          spec.hash_seed_v6 = seeds.jhash_v6;
        }
        out.push_back(std::move(spec));
      }
    }
  }
  return out;
}

absl::Status Agent::Consolidate() {
  if (!NeedsConsolidation()) return absl::OkStatus();
  consolidate_ = dirty_ = true;
  auto st = Commit();
  consolidate_ = false;
  return st;
}

bool Agent::ApplyInPlace() {
  const dataplane::Snapshot* snap = inst_.snapshots().current_for_writer();
  if (snap == nullptr || snap->classes == nullptr || compiled_ == nullptr) return false;
  // Every changed identity must keep to the classes compiled: not a local
  // endpoint's (its subject class would change), and labels whose peer
  // selector signature is already a class (or none: class 0).
  std::set<uint32_t> local_ids;
  std::set<identity::Prefix> local_hosts;
  for (const auto& [k, e] : endpoints_) {
    local_ids.insert(e.identity);
    for (const auto& a : e.addrs) local_hosts.insert(identity::Prefix::Host(a));
  }
  std::vector<std::pair<uint32_t, uint32_t>> classes;
  for (uint32_t id : changed_ids_) {
    if (local_ids.contains(id)) return false;
    const identity::Labels* l = reg_.Find(id);
    std::optional<uint32_t> c = l != nullptr ? compiled_->ClassifyIdentity(*l) : 0u;
    if (!c) return false;
    classes.emplace_back(id, *c);
  }
  // The worker-visible tables, in place (dataplane/snapshot.h, races 6):
  // the published snapshot's identity -> class table and the ipcache.
  for (const auto& [id, c] : classes) {
    if (c == 0) {
      snap->classes->Erase(id);
      compiled_->peer_class_of.erase(id);
    } else {
      if (!snap->classes->Set(id, c).ok()) return false;  // the full path rebuilds it
      compiled_->peer_class_of[id] = c;
    }
  }
  compiled_->identities_version = reg_.version();  // the classes match the registry again
  for (const auto& p : changed_prefixes_) {
    if (local_hosts.contains(p)) continue;  // a local endpoint's route stays its port
    auto it = ipcache_.entries().find(p);
    absl::Status st = it != ipcache_.entries().end()
                          ? inst_.ipcache().Upsert(p, dataplane::RouteOf(it->second))
                          : inst_.ipcache().Remove(p);
    if (!st.ok() && !absl::IsNotFound(st)) return false;
  }
  inst_.ipcache().Reclaim();
  in_place_ += changed_ids_.size() + changed_prefixes_.size();
  return true;
}

absl::Status Agent::Commit() {
  if (!dirty_) return absl::OkStatus();
  if (in_place_updates_ && !full_commit_ && !consolidate_ && ApplyInPlace()) {
    changed_ids_.clear();
    changed_prefixes_.clear();
    dirty_ = false;
    return absl::OkStatus();
  }
  std::set<identity::Prefix> prefixes;
  for (const auto& p : policies_)
    for (const auto& r : p.rules)
      for (auto* sec : {&r.ingress, &r.ingress_deny, &r.egress, &r.egress_deny})
        for (const auto& pr : *sec) prefixes.insert(pr.cidrs.begin(), pr.cidrs.end());
  if (auto st = ipcache_.SyncCidrIdentities(prefixes, reg_); !st.ok()) return st;

  classifier::CompileInput in;
  in.policies = &policies_;
  in.identities = &reg_;
  in.options = opts_;
  in.mesh_named_ports = ipcache_.AllNamedPorts();
  // From the previous compilation (reused peer classes, stable subject
  // class numbers), except when consolidating: then from scratch, which
  // numbers classes in signature order again (compact ACL ranges, no holes).
  in.previous = consolidate_ ? nullptr : compiled_.get();
  dataplane::SnapshotInput si;
  for (const auto& [k, e] : endpoints_) {
    in.endpoints.push_back({e.identity, e.named_ports});
    in.mesh_named_ports.insert(in.mesh_named_ports.end(), e.named_ports.begin(),
                               e.named_ports.end());
    dataplane::SnapshotEndpoint se;
    se.port = inst_.port_id(e.port_index);
    se.mac = e.mac;
    se.identity = e.identity;
    se.addrs = e.addrs;
    si.endpoints.push_back(std::move(se));
  }
  auto cp = classifier::Compile(in);
  if (!cp.ok()) return cp.status();
  auto compiled = std::make_unique<classifier::CompiledPolicy>(std::move(*cp));

  si.generation = ++generation_;
  si.policy = compiled.get();
  si.ipcache = &inst_.ipcache();
  auto specs = BuildServices();
  si.services = specs;
  si.router_mac = config_.router_mac;
  if (config_.fabric_port >= 0) {
    si.fabric.port = inst_.port_id(size_t(config_.fabric_port));
    si.fabric.encap = config_.encap;
    si.fabric.node_v4 = config_.node_v4;
    si.fabric.node_mac = config_.node_mac;
  }
  if (config_.uplink_port >= 0) {
    si.uplink.port = inst_.port_id(size_t(config_.uplink_port));
    si.uplink.mac = config_.uplink_mac;
    si.uplink.gateway_mac = config_.gateway_mac;
  }
  if (!consolidate_) si.previous_acl = acl_;
  auto snap = dataplane::BuildSnapshot(si);
  if (!snap.ok()) {
    --generation_;
    return snap.status();
  }
  if (auto st = dataplane::SyncIpcache(inst_.ipcache(), ipcache_, si.endpoints); !st.ok()) {
    return st;
  }
  acl_ = (*snap)->acl;
  inst_.snapshots().Publish(std::move(*snap));
  inst_.snapshots().Reclaim();
  inst_.ipcache().Reclaim();
  compiled_ = std::move(compiled);
  specs_ = std::move(specs);
  dirty_ = full_commit_ = false;
  changed_ids_.clear();
  changed_prefixes_.clear();
  return absl::OkStatus();
}

AgentCounts Agent::Counts() const {
  AgentCounts c;
  c.identities = reg_.size();
  c.ipcache = ipcache_.entries().size();
  c.endpoints = endpoints_.size();
  c.policies = policies_.size();
  c.services = services_.size();
  c.frontends = specs_.size();
  c.generation = generation_;
  c.revision = revision_;
  c.synced = synced_;
  c.in_place = in_place_;
  return c;
}

}  // namespace meshgate::control
