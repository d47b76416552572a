#include "dataplane/snapshot.h"

#include <rte_errno.h>

#include <atomic>
#include <map>

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {
std::atomic<uint64_t> g_lpm_seq{0};  // unique rte_lpm names per process
}

Snapshot::~Snapshot() {
  if (lpm4 != nullptr) rte_lpm_free(lpm4);
  if (lpm6 != nullptr) rte_lpm6_free(lpm6);
}

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
  auto acl = classifier::AclTable::Build(*in.policy);
  if (!acl.ok()) return acl.status();
  s->acl = std::move(*acl);
  auto classes = classifier::IdentityClassTable::Build(*in.policy);
  if (!classes.ok()) return classes.status();
  s->classes = std::move(*classes);

  // Endpoints, and the host routes that lead to them.
  std::map<identity::IpAddr, uint16_t> endpoint_of_addr;
  for (size_t i = 0; i < in.endpoints.size(); ++i) {
    const auto& e = in.endpoints[i];
    if (e.port >= kMaxPorts) {
      return absl::InvalidArgumentError(meshgate::StrCat("endpoint port ", e.port, " >= ", kMaxPorts));
    }
    EndpointEntry ee;
    ee.port = e.port;
    ee.mac = e.mac;
    ee.identity = e.identity;
    ee.subject_class = in.policy->subject_class_of_endpoint[i];
    for (const auto& a : e.addrs) {
      if (a.family == identity::Family::kIpv4) ee.v4 = a.v4_host_order();
      else {
        ee.v6 = a.bytes;
        ee.has_v6 = true;
      }
      endpoint_of_addr[a] = uint16_t(i);
    }
    if (s->role[e.port] == PortRole::kFabric) {
      return absl::InvalidArgumentError(meshgate::StrCat("port ", e.port, " is the fabric port"));
    }
    s->endpoint_of_port[e.port] = uint16_t(i);
    s->role[e.port] = PortRole::kEndpoint;
    s->endpoints.push_back(ee);
  }

  // The ipcache as LPM tables; next hop = index into routes.
  uint32_t n4 = 0, n6 = 0;
  for (const auto& [p, e] : in.ipcache->entries()) {
    (p.addr.family == identity::Family::kIpv4 ? n4 : n6)++;
  }
  for (const auto& [a, i] : endpoint_of_addr) (a.family == identity::Family::kIpv4 ? n4 : n6)++;
  std::string name4 = meshgate::StrCat("mglpm4_", g_lpm_seq.fetch_add(1));
  rte_lpm_config c4{};
  c4.max_rules = n4 + 16;
  c4.number_tbl8s = n4 + 16;
  s->lpm4 = rte_lpm_create(name4.c_str(), SOCKET_ID_ANY, &c4);
  std::string name6 = meshgate::StrCat("mglpm6_", g_lpm_seq.fetch_add(1));
  rte_lpm6_config c6{};
  c6.max_rules = n6 + 16;
  c6.number_tbl8s = (n6 + 16) * 4;
  s->lpm6 = rte_lpm6_create(name6.c_str(), SOCKET_ID_ANY, &c6);
  if (s->lpm4 == nullptr || s->lpm6 == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("rte_lpm_create: ", rte_strerror(rte_errno)));
  }
  auto add = [&](const identity::Prefix& p, Route r) -> absl::Status {
    uint32_t nh = uint32_t(s->routes.size());
    s->routes.push_back(r);
    int rc = p.addr.family == identity::Family::kIpv4
                 ? rte_lpm_add(s->lpm4, p.addr.v4_host_order(), p.len, nh)
                 : rte_lpm6_add(s->lpm6, p.addr.bytes.data(), p.len, nh);
    if (rc != 0) {
      return absl::ResourceExhaustedError(
          meshgate::StrCat("LPM add ", p.ToString(), ": ", rte_strerror(-rc)));
    }
    return absl::OkStatus();
  };
  for (const auto& [p, e] : in.ipcache->entries()) {
    Route r;
    r.identity = e.id;
    if (e.tunnel_endpoint && e.tunnel_endpoint->family == identity::Family::kIpv4) {
      r.kind = Route::kRemote;
      r.tunnel_v4 = e.tunnel_endpoint->v4_host_order();
    }
    if (auto st = add(p, r); !st.ok()) return st;
  }
  for (const auto& [a, i] : endpoint_of_addr) {
    Route r;
    r.identity = s->endpoints[i].identity;
    r.kind = Route::kLocal;
    r.endpoint = i;
    if (auto st = add(identity::Prefix::Host(a), r); !st.ok()) return st;
  }
  s->outside.identity = identity::reserved::kWorld;
  return s;
}

}  // namespace meshgate::dataplane
