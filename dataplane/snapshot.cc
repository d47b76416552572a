#include "dataplane/snapshot.h"

#include <rte_errno.h>

#include <cstring>
#include <map>
#include <set>

#include "identity/strutil.h"

namespace meshgate::dataplane {
absl::StatusOr<std::unique_ptr<Snapshot>> BuildSnapshot(const SnapshotInput& in) {
  if (in.policy == nullptr || in.ipcache == nullptr) {
    return absl::InvalidArgumentError("BuildSnapshot: policy and ipcache are required");
  }
  if (in.endpoints.size() != in.policy->subject_class_of_endpoint.size()) {
    return absl::InvalidArgumentError("BuildSnapshot: endpoints do not match the compilation");
  }
  auto s = std::make_unique<Snapshot>();
  s->generation = in.generation;
  s->router_mac = in.router_mac;
  s->fabric = in.fabric;
  if (in.fabric.port != 0xffff) {
    if (in.fabric.port >= kMaxPorts) {
      return absl::InvalidArgumentError(meshgate::StrCat("fabric port ", in.fabric.port, " >= ", kMaxPorts));
    }
    s->role[in.fabric.port] = PortRole::kFabric;
  }
  s->uplink = in.uplink;
  if (in.uplink.port != 0xffff) {
    if (in.uplink.port >= kMaxPorts || s->role[in.uplink.port] != PortRole::kNone) {
      return absl::InvalidArgumentError(meshgate::StrCat("bad uplink port ", in.uplink.port));
    }
    s->role[in.uplink.port] = PortRole::kUplink;
  }
  if (in.previous_acl != nullptr && in.previous_acl->SameRules(*in.policy)) {
    s->acl = in.previous_acl;
  } else {
    auto acl = classifier::AclTable::Build(*in.policy, -1, in.previous_acl.get());
    if (!acl.ok()) return acl.status();
    s->acl = std::move(*acl);
  }
  auto classes = classifier::IdentityClassTable::Build(*in.policy);
  if (!classes.ok()) return classes.status();
  s->classes = std::move(*classes);

  s->ipcache = in.ipcache;
  if (!in.services.empty()) {
    auto svc = ServiceTable::Build(in.services);
    if (!svc.ok()) return svc.status();
    s->services = std::move(*svc);
  }
  for (size_t i = 0; i < in.endpoints.size(); ++i) {
    const auto& e = in.endpoints[i];
    if (e.port >= kMaxPorts) {
      return absl::InvalidArgumentError(meshgate::StrCat("endpoint port ", e.port, " >= ", kMaxPorts));
    }
    EndpointEntry ee;
    ee.port = e.port;
    ee.mac = e.mac;
    std::memcpy(ee.l2_to.data(), e.mac.addr_bytes, 6);
    std::memcpy(ee.l2_to.data() + 6, s->router_mac.addr_bytes, 6);
    ee.identity = e.identity;
    ee.subject_class = in.policy->subject_class_of_endpoint[i];
    for (const auto& a : e.addrs) {
      if (a.family == identity::Family::kIpv4) {
        ee.v4 = a.v4_host_order();
      } else {
        ee.v6 = a.bytes;
        ee.has_v6 = true;
      }
    }
    if (s->role[e.port] == PortRole::kFabric || s->role[e.port] == PortRole::kUplink) {
      return absl::InvalidArgumentError(
          meshgate::StrCat("port ", e.port, " is the fabric or uplink port"));
    }
    s->endpoint_of_port[e.port] = uint16_t(i);
    s->role[e.port] = PortRole::kEndpoint;
    s->endpoints.push_back(ee);
  }
  return s;
}

Route RouteOf(const identity::IpCacheEntry& e) {
  Route r;
  r.identity = e.id;
  if (e.tunnel_endpoint && e.tunnel_endpoint->family == identity::Family::kIpv4) {
    r.kind = Route::kRemote;
    r.tunnel_v4 = e.tunnel_endpoint->v4_host_order();
  }
  return r;
}

absl::Status SyncIpcache(IpcacheTable& table, const identity::IpCache& model,
                         const std::vector<SnapshotEndpoint>& local) {
  std::map<identity::Prefix, Route> want;
  for (const auto& [p, e] : model.entries()) want[p] = RouteOf(e);
  for (const auto& e : local) {
    for (const auto& a : e.addrs) {
      Route r;
      r.identity = e.identity;
      r.kind = Route::kLocal;
      r.port = e.port;
      want[identity::Prefix::Host(a)] = r;
    }
  }
  for (const auto& p : table.Prefixes()) {
    if (!want.contains(p)) {
      if (auto st = table.Remove(p); !st.ok()) return st;
    }
  }
  for (const auto& [p, r] : want) {
    if (auto st = table.Upsert(p, r); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace meshgate::dataplane
