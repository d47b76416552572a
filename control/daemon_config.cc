#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "control/daemon.h"

#include "absl/strings/numbers.h"
#include "identity/address.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace {

struct Cfg {
  const std::string& file;
  std::string err;
  int Line(const YAML::Node& n) const { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }
  void Error(const YAML::Node& n, const std::string& msg) {
    if (err.empty()) err = StrCat(file, ":", Line(n), ": ", msg);
  }
  void Keys(const YAML::Node& n, const std::string& where, std::set<std::string> known) {
    if (!n.IsMap()) {
      Error(n, where + ": expected a map");
      return;
    }
    for (const auto& kv : n) {
      std::string k = kv.first.as<std::string>("");
      if (!known.contains(k)) Error(kv.first, StrCat(where, ": unknown key \"", k, "\""));
    }
  }
  std::string Str(const YAML::Node& n, const std::string& where) {
    if (!n.IsScalar()) {
      Error(n, where + ": expected a string");
      return "";
    }
    return n.Scalar();
  }
  uint64_t UInt(const YAML::Node& n, const std::string& where, uint64_t lo, uint64_t hi) {
    std::string s = n.IsScalar() ? n.Scalar() : "";
    if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos ||
        std::stoull(s) < lo || std::stoull(s) > hi) {
      Error(n, StrCat(where, ": expected an integer ", lo, "..", hi));
      return lo;
    }
    return std::stoull(s);
  }
  bool Bool(const YAML::Node& n, const std::string& where) {
    bool b = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, b)) Error(n, where + ": expected true or false");
    return b;
  }
  rte_ether_addr Mac(const YAML::Node& n, const std::string& where) {
    rte_ether_addr m{};
    std::string s = Str(n, where);
    if (rte_ether_unformat_addr(s.c_str(), &m) != 0) Error(n, StrCat(where, ": \"", s, "\" is not a MAC address"));
    return m;
  }
  uint32_t V4(const YAML::Node& n, const std::string& where) {
    auto a = identity::IpAddr::Parse(Str(n, where));
    if (!a.ok() || a->family != identity::Family::kIpv4) {
      Error(n, where + ": expected an IPv4 address");
      return 0;
    }
    return a->v4_host_order();
  }
};

}  // namespace

absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCat(path, ": cannot read the config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  DaemonConfig c;
  c.file = path;
  Cfg g{path, ""};
  YAML::Node root;
  try {
    root = YAML::Load(ss.str());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat(path, ":", e.mark.is_null() ? 0 : e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  try {
    g.Keys(root, "config", {"cluster", "options", "lcores", "idleSleepUs", "ports", "routerMac",
                            "node", "uplink", "conntrackSize", "sockets", "metrics",
                            "maxFrameBytes", "eal", "capture", "endpoints"});
    if (auto cl = root["cluster"]) {
      g.Keys(cl, "cluster", {"name", "id"});
      if (cl["name"]) c.cluster = g.Str(cl["name"], "cluster.name");
      if (cl["id"]) c.cluster_id = uint32_t(g.UInt(cl["id"], "cluster.id", 1, 255));
    }
    if (c.cluster.empty() || c.cluster_id == 0) g.Error(root, "cluster: name and id (1..255) are required");
    if (auto o = root["options"]) {
      g.Keys(o, "options", {"policyDefaultLocalCluster", "policyAuditMode", "enforcementMode"});
      if (o["policyDefaultLocalCluster"]) c.options.policy_default_local_cluster = g.Bool(o["policyDefaultLocalCluster"], "options.policyDefaultLocalCluster");
      if (o["policyAuditMode"]) c.options.policy_audit_mode = g.Bool(o["policyAuditMode"], "options.policyAuditMode");
      if (o["enforcementMode"]) {
        c.options.enforcement_mode = g.Str(o["enforcementMode"], "options.enforcementMode");
        if (c.options.enforcement_mode != "default" && c.options.enforcement_mode != "always" &&
            c.options.enforcement_mode != "never") {
          g.Error(o["enforcementMode"], "options.enforcementMode: default, always or never");
        }
      }
    }
    if (auto l = root["lcores"]) {
      c.lcores.clear();
      c.lcore_cpus.clear();
      if (!l.IsSequence()) g.Error(l, "lcores: expected a list of lcore ids");
      for (const auto& x : l) {
        // An lcore id, or "LCORE@CPU" to run worker lcore LCORE on CPU
        // (several workers may share a CPU: EAL --lcores).
        std::string v = x.IsScalar() ? x.Scalar() : "";
        if (auto at = v.find('@'); at != std::string::npos) {
          unsigned lc = 0, cpu = 0;
          if (!absl::SimpleAtoi(v.substr(0, at), &lc) || !absl::SimpleAtoi(v.substr(at + 1), &cpu) ||
              lc < 1 || lc > 127 || cpu > 1023) {
            g.Error(x, "lcores[]: expected an lcore id (1-127) or LCORE@CPU");
            continue;
          }
          c.lcores.push_back(lc);
          c.lcore_cpus.push_back(int(cpu));
        } else {
          c.lcores.push_back(unsigned(g.UInt(x, "lcores[]", 1, 127)));
          c.lcore_cpus.push_back(-1);
        }
      }
      if (c.lcores.empty()) g.Error(l, "lcores: at least one worker lcore (lcore 0 runs control)");
    }
    if (auto x = root["idleSleepUs"]) c.idle_sleep_us = uint32_t(g.UInt(x, "idleSleepUs", 0, 100000));
    auto ports = root["ports"];
    if (!ports || !ports.IsSequence() || ports.size() == 0) g.Error(root, "ports: at least one port is required");
    int fabric = 0, uplink = 0;
    for (size_t i = 0; ports && ports.IsSequence() && i < ports.size(); ++i) {
      std::string w = StrCat("ports[", i, "]");
      g.Keys(ports[i], w, {"device", "role"});
      DaemonPort p;
      if (ports[i]["device"]) p.device = g.Str(ports[i]["device"], w + ".device");
      if (p.device.empty()) g.Error(ports[i], w + ": device is required");
      std::string role = ports[i]["role"] ? g.Str(ports[i]["role"], w + ".role") : "endpoint";
      if (role == "endpoint") p.role = dataplane::PortRole::kEndpoint;
      else if (role == "fabric") p.role = dataplane::PortRole::kFabric, ++fabric;
      else if (role == "uplink") p.role = dataplane::PortRole::kUplink, ++uplink;
      else g.Error(ports[i]["role"], w + ".role: endpoint, fabric or uplink");
      c.ports.push_back(p);
    }
    if (fabric > 1 || uplink > 1) g.Error(ports, "ports: at most one fabric and one uplink port");
    if (c.ports.size() > dataplane::kMaxPorts) g.Error(ports, StrCat("ports: at most ", dataplane::kMaxPorts));
    c.router_mac = {{0x02, 0xaa, 0, 0, 0, uint8_t(c.cluster_id)}};
    if (auto m = root["routerMac"]) c.router_mac = g.Mac(m, "routerMac");
    if (auto n = root["node"]) {
      g.Keys(n, "node", {"address", "mac", "encap"});
      if (n["address"]) c.node_v4 = g.V4(n["address"], "node.address");
      if (n["mac"]) c.node_mac = g.Mac(n["mac"], "node.mac");
      if (n["encap"]) {
        std::string e = g.Str(n["encap"], "node.encap");
        if (e == "vxlan") c.encap = dataplane::Encap::kVxlan;
        else if (e == "geneve") c.encap = dataplane::Encap::kGeneve;
        else g.Error(n["encap"], "node.encap: vxlan or geneve");
      }
    }
    if (fabric && c.node_v4 == 0) g.Error(root, "node.address: a fabric port needs this node's underlay address");
    if (auto u = root["uplink"]) {
      g.Keys(u, "uplink", {"mac", "gatewayMac"});
      if (u["mac"]) c.uplink_mac = g.Mac(u["mac"], "uplink.mac");
      if (u["gatewayMac"]) c.gateway_mac = g.Mac(u["gatewayMac"], "uplink.gatewayMac");
    }
    if (auto x = root["conntrackSize"]) c.conntrack_size = uint32_t(g.UInt(x, "conntrackSize", 1024, 1u << 26));
    if (auto s = root["sockets"]) {
      g.Keys(s, "sockets", {"feed", "admin", "mode", "tcp"});
      if (s["feed"]) c.feed_socket = g.Str(s["feed"], "sockets.feed");
      if (s["admin"]) c.admin_socket = g.Str(s["admin"], "sockets.admin");
      if (s["mode"]) {
        std::string m = g.Str(s["mode"], "sockets.mode");
        if (m.empty() || m.size() > 4 || m.find_first_not_of("01234567") != std::string::npos) {
          g.Error(s["mode"], "sockets.mode: an octal mode such as \"0600\"");
        } else {
          c.socket_mode = unsigned(std::stoul(m, nullptr, 8));
        }
      }
      if (auto t = s["tcp"]) {
        g.Keys(t, "sockets.tcp", {"enabled", "address", "port"});
        if (t["enabled"]) c.feed_tcp = g.Bool(t["enabled"], "sockets.tcp.enabled");
        if (t["address"]) c.feed_tcp_address = g.Str(t["address"], "sockets.tcp.address");
        if (t["port"]) c.feed_tcp_port = uint16_t(g.UInt(t["port"], "sockets.tcp.port", 1, 65535));
        // The feed has no authentication: it listens on loopback only.
        auto a = identity::IpAddr::Parse(c.feed_tcp_address);
        bool loopback = a.ok() && (a->family == identity::Family::kIpv4 ? (a->v4_host_order() >> 24) == 127
                                                                          : a->ToString() == "::1");
        if (!loopback) {
          g.Error(t["address"] ? t["address"] : t,
                  StrCat("sockets.tcp.address: \"", c.feed_tcp_address,
                         "\" is not a loopback address (the feed has no authentication)"));
        }
      }
    }
    if (auto m = root["metrics"]) c.metrics = g.Str(m, "metrics");
    if (auto x = root["capture"]) c.capture = g.Bool(x, "capture");
    if (auto eps = root["endpoints"]) {
      if (!eps.IsSequence()) g.Error(eps, "endpoints: expected a list");
      for (size_t i = 0; eps.IsSequence() && i < eps.size(); ++i) {
        std::string w = StrCat("endpoints[", i, "]");
        const auto& n = eps[i];
        g.Keys(n, w, {"name", "namespace", "labels", "serviceAccount", "ipv4", "ipv6", "port", "mac"});
        DaemonEndpoint e;
        e.spec.cluster = c.cluster;
        if (n["name"]) e.spec.name = g.Str(n["name"], w + ".name");
        if (e.spec.name.empty()) g.Error(n, w + ": name is required");
        if (n["namespace"]) e.spec.ns = g.Str(n["namespace"], w + ".namespace");
        if (n["serviceAccount"]) e.spec.service_account = g.Str(n["serviceAccount"], w + ".serviceAccount");
        if (auto l = n["labels"]) {
          if (!l.IsMap()) g.Error(l, w + ".labels: expected a map");
          for (const auto& kv : l) e.spec.labels[kv.first.as<std::string>("")] = g.Str(kv.second, w + ".labels");
        }
        for (const char* fam : {"ipv4", "ipv6"}) {
          if (!n[fam]) continue;
          auto a = identity::IpAddr::Parse(g.Str(n[fam], StrCat(w, ".", fam)));
          bool v6 = std::string(fam) == "ipv6";
          if (!a.ok() || (a->family == identity::Family::kIpv6) != v6) {
            g.Error(n[fam], StrCat(w, ".", fam, ": not an ", v6 ? "IPv6" : "IPv4", " address"));
          } else {
            (v6 ? e.spec.ipv6 : e.spec.ipv4) = *a;
          }
        }
        if (!n["ipv4"] && !n["ipv6"]) g.Error(n, w + ": at least one address (ipv4, ipv6)");
        if (!n["port"] || !n["mac"]) g.Error(n, w + ": port (index of an endpoint port) and mac are required");
        if (n["port"]) e.port = uint16_t(g.UInt(n["port"], w + ".port", 0, 1000));
        if (n["mac"]) e.mac = g.Mac(n["mac"], w + ".mac");
        c.endpoints.push_back(std::move(e));
      }
    }
    if (auto m = root["maxFrameBytes"]) c.max_frame = g.UInt(m, "maxFrameBytes", 1024, 1u << 30);
    if (auto e = root["eal"]) {
      if (!e.IsSequence()) g.Error(e, "eal: expected a list of arguments");
      for (const auto& x : e) c.eal.push_back(g.Str(x, "eal[]"));
    }
  } catch (const YAML::Exception& e) {
    g.Error(root, e.msg);
  }
  if (!g.err.empty()) return absl::InvalidArgumentError(g.err);
  return c;
}

}  // namespace meshgate::control
