#include "control/mesh_controller.h"

#include <netinet/in.h>

#include "control/feed.h"
#include "control/manifest.h"
#include "identity/endpoint.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace {

std::string MacString(const rte_ether_addr& m) {
  char buf[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(buf, sizeof buf, &m);
  return buf;
}

}  // namespace

MeshController::MeshController(std::vector<ScenarioCluster> clusters,
                               std::vector<ScenarioNamespace> namespaces)
    : clusters_(std::move(clusters)), namespaces_(std::move(namespaces)) {}

const ScenarioCluster* MeshController::cluster(const std::string& name) const {
  for (const auto& c : clusters_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const std::vector<lb::Service>& MeshController::services(const std::string& cluster) const {
  static const std::vector<lb::Service> kNone;
  auto it = services_.find(cluster);
  return it == services_.end() ? kNone : it->second;
}

absl::Status MeshController::AddEndpoint(const ScenarioEndpoint& e, uint16_t port,
                                         const rte_ether_addr& mac) {
  const ScenarioCluster* c = cluster(e.cluster);
  if (c == nullptr) return absl::InvalidArgumentError(StrCat("endpoint ", e.Key(), ": unknown cluster"));
  identity::EndpointSpec spec;
  spec.name = e.name;
  spec.ns = e.ns;
  spec.cluster = e.cluster;
  spec.labels = e.labels;
  spec.service_account = e.service_account;
  for (const auto& ns : namespaces_) {
    if (ns.cluster == e.cluster && ns.name == e.ns) spec.namespace_labels = ns.labels;
  }
  auto id = reg_.Allocate(c->id, identity::IdentityLabels(spec));
  if (!id.ok()) return id.status();
  eps_[e.Key()] = {e, *id, port, mac};
  return absl::OkStatus();
}

absl::Status MeshController::RemoveEndpoint(const std::string& key) {
  if (eps_.erase(key) == 0) return absl::NotFoundError(StrCat("no endpoint ", key));
  return absl::OkStatus();
}

absl::Status MeshController::ApplyManifest(const std::string& cl, const std::string& yaml,
                                           const std::string& file, int line_offset) {
  const ScenarioCluster* c = cluster(cl);
  if (c == nullptr) return absl::InvalidArgumentError(StrCat("unknown cluster \"", cl, "\""));
  classifier::ParseContext ctx;
  ctx.file = file;
  ctx.cluster_name = cl;
  ctx.policy_default_local_cluster = c->options.policy_default_local_cluster;
  Manifests parsed;
  std::vector<Diagnostic> diags;
  if (!ParseManifests(yaml, ctx, parsed, diags, line_offset)) {
    std::string msg;
    for (const auto& d : diags) StrAppend(&msg, msg.empty() ? "" : "\n", d.ToString());
    return absl::InvalidArgumentError(msg);
  }
  auto& svcs = services_[cl];
  for (auto& s : parsed.services) {
    std::erase_if(svcs, [&](const lb::Service& o) { return o.ns == s.ns && o.name == s.name; });
    svcs.push_back(std::move(s));
  }
  mesh::v1::Update u;
  auto* a = u.mutable_manifest_apply();
  a->set_yaml(yaml);
  a->set_file(file);
  a->set_line_offset(line_offset);
  peers_[cl].queued.push_back(std::move(u));
  return absl::OkStatus();
}

absl::Status MeshController::DeleteManifest(const std::string& cl, const std::string& kind,
                                            const std::string& ns, const std::string& name) {
  if (cluster(cl) == nullptr) return absl::InvalidArgumentError(StrCat("unknown cluster \"", cl, "\""));
  if (kind == "Service") {
    std::erase_if(services_[cl], [&](const lb::Service& s) { return s.ns == ns && s.name == name; });
  }
  mesh::v1::Update u;
  auto* x = u.mutable_manifest_delete();
  x->set_kind(kind);
  x->set_namespace_(ns);
  x->set_name(name);
  peers_[cl].queued.push_back(std::move(u));
  return absl::OkStatus();
}

void MeshController::Reset(const std::string& cl) {
  Peer& p = peers_[cl];
  p.synced = false;
  p.sent.clear();
}

// What `cl`'s agent should hold, keyed so that map order is the order to
// send in (identities, ipcache, endpoints, services).
std::map<std::string, mesh::v1::Update> MeshController::Desired(const std::string& cl) const {
  std::map<std::string, mesh::v1::Update> want;
  for (const auto& [key, e] : eps_) {
    mesh::v1::Update u;
    auto* iu = u.mutable_identity_upsert();
    iu->set_id(e.identity);
    for (const auto& l : reg_.Find(e.identity)->list()) iu->add_labels(l.ToString());
    want[StrCat("1id/", e.identity)] = u;
    const ScenarioCluster* c = cluster(e.spec.cluster);
    for (const auto& a : {e.spec.ipv4, e.spec.ipv6}) {
      if (!a) continue;
      mesh::v1::Update ip;
      auto* x = ip.mutable_ipcache_upsert();
      x->set_prefix(identity::Prefix::Host(*a).ToString());
      x->set_identity(e.identity);
      x->set_tunnel_endpoint(identity::IpAddr::V4(NodeV4(c->id)).ToString());
      x->set_cluster(c->name);
      want[StrCat("2ip/", x->prefix())] = ip;
    }
    if (e.spec.cluster == cl) {
      mesh::v1::Update ep;
      auto* x = ep.mutable_endpoint_attach();
      x->set_name(e.spec.name);
      x->set_namespace_(e.spec.ns);
      x->set_identity(e.identity);
      for (const auto& a : {e.spec.ipv4, e.spec.ipv6}) {
        if (a) x->add_addresses(a->ToString());
      }
      x->set_port(e.port);
      x->set_mac(MacString(e.mac));
      want[StrCat("3ep/", e.spec.ns, "/", e.spec.name)] = ep;
    }
  }
  // Every cluster's services with the backends its endpoint controller
  // would list; another cluster's only when global (Cilium exports only
  // global services to the kvstore).
  for (const auto& [owner, svcs] : services_) {
    for (const auto& s : svcs) {
      if (owner != cl && !s.global.global) continue;
      mesh::v1::Update u;
      auto* cs = u.mutable_service_upsert();
      cs->set_cluster(owner);
      cs->set_namespace_(s.ns);
      cs->set_name(s.name);
      for (const auto& f : s.frontends) cs->add_frontends(f.ToString());
      cs->set_include_external(s.global.global);
      cs->set_shared(s.global.shared);
      cs->set_affinity(std::string(lb::AffinityName(s.global.affinity)));
      for (const auto& [key, e] : eps_) {
        if (e.spec.cluster != owner || e.spec.ns != s.ns || s.selector.empty()) continue;
        bool match = true;
        for (const auto& [k, v] : s.selector) {
          auto it = e.spec.labels.find(k);
          match = match && it != e.spec.labels.end() && it->second == v;
        }
        if (!match) continue;
        for (const auto& a : {e.spec.ipv4, e.spec.ipv6}) {
          if (!a) continue;
          auto* b = cs->add_backends();
          b->set_address(a->ToString());
          b->set_cluster(owner);
          b->set_state("active");
          b->set_name(key);
          for (const auto& sp : s.ports) {
            if (!sp.target_port_name.empty()) continue;  // endpoints declare no named ports
            auto* pc = b->add_ports();
            pc->set_name(sp.name);
            pc->set_port(sp.target_port ? sp.target_port : sp.port);
            pc->set_protocol(sp.proto == IPPROTO_UDP    ? "UDP"
                             : sp.proto == IPPROTO_SCTP ? "SCTP"
                                                        : "TCP");
          }
        }
      }
      want[StrCat("4svc/", owner, "/", s.ns, "/", s.name)] = u;
    }
  }
  return want;
}

std::string MeshController::Frames(const std::string& cl) {
  const ScenarioCluster* c = cluster(cl);
  if (c == nullptr) return {};
  Peer& p = peers_[cl];
  std::string frames;
  auto emit = [&](mesh::v1::Update u) {
    u.set_revision(++p.revision);
    AppendFrame(u, frames);
  };
  if (!p.synced) {
    mesh::v1::Update u;
    auto* h = u.mutable_hello();
    h->set_protocol_version(kProtocolVersion);
    h->set_cluster("mesh");
    emit(u);
    u.Clear();
    auto* cc = u.mutable_cluster_config();
    cc->set_cluster(c->name);
    cc->set_cluster_id(c->id);
    cc->set_policy_default_local_cluster(c->options.policy_default_local_cluster);
    cc->set_policy_audit_mode(c->options.policy_audit_mode);
    cc->set_enforcement_mode(c->options.enforcement_mode);
    emit(u);
  }
  for (auto& u : p.queued) emit(std::move(u));
  p.queued.clear();
  auto want = Desired(cl);
  if (!p.synced) {
    mesh::v1::Update u;
    u.mutable_sync_start();
    emit(u);
  } else {
    // Deletes first, in reverse order: endpoints before their identities.
    for (auto it = p.sent.rbegin(); it != p.sent.rend(); ++it) {
      if (want.contains(it->first)) continue;
      mesh::v1::Update old, del;
      old.ParseFromString(it->second);
      if (old.has_identity_upsert()) del.mutable_identity_delete()->set_id(old.identity_upsert().id());
      if (old.has_ipcache_upsert()) {
        del.mutable_ipcache_delete()->set_prefix(old.ipcache_upsert().prefix());
        del.mutable_ipcache_delete()->set_cluster(old.ipcache_upsert().cluster());
      }
      if (old.has_endpoint_attach()) {
        del.mutable_endpoint_detach()->set_name(old.endpoint_attach().name());
        del.mutable_endpoint_detach()->set_namespace_(old.endpoint_attach().namespace_());
      }
      if (old.has_service_upsert()) {
        auto* d = del.mutable_service_delete();
        d->set_cluster(old.service_upsert().cluster());
        d->set_namespace_(old.service_upsert().namespace_());
        d->set_name(old.service_upsert().name());
      }
      emit(del);
    }
  }
  std::map<std::string, std::string> sent;
  for (auto& [k, u] : want) {
    std::string bytes = u.SerializeAsString();
    auto it = p.sent.find(k);
    if (!p.synced || it == p.sent.end() || it->second != bytes) emit(u);
    sent[k] = std::move(bytes);
  }
  if (!p.synced) {
    mesh::v1::Update u;
    u.mutable_sync_done();
    emit(u);
    p.synced = true;
  }
  p.sent = std::move(sent);
  return frames;
}

}  // namespace meshgate::control
