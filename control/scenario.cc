#include "control/scenario.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "identity/strutil.h"

namespace meshgate::control {

const ScenarioCluster* Scenario::Cluster(const std::string& name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

struct Ctx {
  const std::string& file;
  std::vector<Diagnostic>& diags;
  std::vector<Diagnostic>& warnings;

  int Line(const YAML::Node& n) const { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }
  void Error(const YAML::Node& n, std::string msg) { diags.push_back({file, Line(n), std::move(msg)}); }
  void Keys(const YAML::Node& n, const std::string& where, std::initializer_list<const char*> known) {
    if (!n.IsMap()) return;
    for (const auto& kv : n) {
      std::string k = kv.first.as<std::string>("");
      bool ok = false;
      for (const char* s : known) ok = ok || k == s;
      if (!ok) warnings.push_back({file, Line(kv.first), StrCat(where, ": unknown key \"", k, "\" ignored")});
    }
  }
  std::string Str(const YAML::Node& n, const char* key, const std::string& where, bool required,
                  std::string def = "") {
    auto v = n[key];
    if (!v || v.IsNull()) {
      if (required) Error(n, StrCat(where, ": missing \"", key, "\""));
      return def;
    }
    if (!v.IsScalar()) {
      Error(v, StrCat(where, ".", key, ": expected a string"));
      return def;
    }
    return v.Scalar();
  }
  bool Bool(const YAML::Node& n, const char* key, const std::string& where, bool def) {
    auto v = n[key];
    if (!v) return def;
    bool b = def;
    if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
      Error(v, StrCat(where, ".", key, ": expected true or false"));
    }
    return b;
  }
  std::optional<uint64_t> UInt(const YAML::Node& n, const char* key, const std::string& where,
                               uint64_t max) {
    auto v = n[key];
    if (!v) return std::nullopt;
    uint64_t x = 0;
    std::string s = v.IsScalar() ? v.Scalar() : "";
    bool ok = !s.empty() && s.size() <= 20 &&
              s.find_first_not_of("0123456789") == std::string::npos;
    if (ok) x = std::stoull(s);
    if (!ok || x > max) {
      Error(v, StrCat(where, ".", key, ": expected an integer 0..", max));
      return std::nullopt;
    }
    return x;
  }
  std::map<std::string, std::string> Map(const YAML::Node& n, const char* key,
                                         const std::string& where) {
    std::map<std::string, std::string> m;
    auto v = n[key];
    if (!v || v.IsNull()) return m;
    if (!v.IsMap()) {
      Error(v, StrCat(where, ".", key, ": expected a map"));
      return m;
    }
    for (const auto& kv : v) {
      if (!kv.second.IsScalar()) {
        Error(kv.second, StrCat(where, ".", key, ": values must be strings"));
        continue;
      }
      m[kv.first.as<std::string>("")] = kv.second.Scalar();
    }
    return m;
  }
  std::optional<identity::IpAddr> Addr(const YAML::Node& n, const char* key,
                                       const std::string& where, identity::Family fam) {
    std::string s = Str(n, key, where, false);
    if (s.empty()) return std::nullopt;
    auto a = identity::IpAddr::Parse(s);
    if (!a.ok() || a->family != fam) {
      Error(n[key], StrCat(where, ".", key, ": \"", s, "\" is not an ",
                           fam == identity::Family::kIpv4 ? "IPv4" : "IPv6", " address"));
      return std::nullopt;
    }
    return *a;
  }
  ScenarioOptions Options(const YAML::Node& n, const std::string& where, ScenarioOptions o) {
    if (!n) return o;
    if (!n.IsMap()) {
      Error(n, StrCat(where, ": expected a map"));
      return o;
    }
    Keys(n, where, {"policyDefaultLocalCluster", "policyAuditMode", "enforcementMode"});
    o.policy_default_local_cluster =
        Bool(n, "policyDefaultLocalCluster", where, o.policy_default_local_cluster);
    o.policy_audit_mode = Bool(n, "policyAuditMode", where, o.policy_audit_mode);
    o.enforcement_mode = Str(n, "enforcementMode", where, false, o.enforcement_mode);
    if (o.enforcement_mode != "default" && o.enforcement_mode != "always" &&
        o.enforcement_mode != "never") {
      Error(n["enforcementMode"], StrCat(where, ".enforcementMode: \"", o.enforcement_mode,
                                         "\" (expected default, always or never)"));
    }
    return o;
  }
  ScenarioEndpoint Endpoint(const YAML::Node& n, const std::string& where) {
    ScenarioEndpoint e;
    e.line = Line(n);
    if (!n.IsMap()) {
      Error(n, StrCat(where, ": expected a map"));
      return e;
    }
    Keys(n, where, {"name", "cluster", "namespace", "labels", "serviceAccount", "ipv4", "ipv6"});
    e.name = Str(n, "name", where, true);
    e.cluster = Str(n, "cluster", where, true);
    e.ns = Str(n, "namespace", where, false, "default");
    e.labels = Map(n, "labels", where);
    e.service_account = Str(n, "serviceAccount", where, false);
    e.ipv4 = Addr(n, "ipv4", where, identity::Family::kIpv4);
    e.ipv6 = Addr(n, "ipv6", where, identity::Family::kIpv6);
    if (!e.ipv4 && !e.ipv6 && !n["ipv4"] && !n["ipv6"]) {
      Error(n, StrCat(where, ": an endpoint needs at least one address (ipv4, ipv6)"));
    }
    return e;
  }
  template <typename F>
  void Seq(const YAML::Node& n, const char* key, const std::string& where, F fn) {
    auto v = n[key];
    if (!v || v.IsNull()) return;
    if (!v.IsSequence()) {
      Error(v, StrCat(where.empty() ? "" : where + ".", key, ": expected a list"));
      return;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      fn(v[i], StrCat(where.empty() ? "" : where + ".", key, "[", i, "]"));
    }
  }
};

const std::set<std::string> kProtocols = {"TCP", "UDP", "SCTP", "ICMP", "ICMPv6"};

}  // namespace

bool ParseScenario(const std::string& text, const std::string& file, Scenario& out,
                   std::vector<Diagnostic>& diags, std::vector<Diagnostic>& warnings) {
  size_t first = diags.size();
  Ctx c{file, diags, warnings};
  out = Scenario();
  out.file = file;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diags.push_back({file, e.mark.is_null() ? 0 : e.mark.line + 1, StrCat("invalid YAML: ", e.msg)});
    return false;
  }
  if (!root.IsMap()) {
    diags.push_back({file, 1, "a scenario is a YAML map (name, clusters, endpoints, steps, ...)"});
    return false;
  }
  try {
    c.Keys(root, "scenario", {"name", "description", "options", "clusters", "namespaces",
                              "endpoints", "external", "manifests", "steps"});
    out.name = c.Str(root, "name", "scenario", true);
    out.description = c.Str(root, "description", "scenario", false);
    out.options = c.Options(root["options"], "options", {});

    std::set<uint32_t> ids;
    c.Seq(root, "clusters", "", [&](const YAML::Node& n, const std::string& w) {
      c.Keys(n, w, {"name", "id", "options"});
      ScenarioCluster cl;
      cl.name = c.Str(n, "name", w, true);
      auto id = c.UInt(n, "id", w, 1u << 20);
      if (!n["id"]) c.Error(n, StrCat(w, ": missing \"id\""));
      if (id && (*id < 1 || *id > 255)) c.Error(n["id"], StrCat(w, ".id: ", *id, " (expected 1..255)"));
      cl.id = uint32_t(id.value_or(0));
      if (out.Cluster(cl.name)) c.Error(n, StrCat(w, ": cluster \"", cl.name, "\" twice"));
      if (cl.id && !ids.insert(cl.id).second) c.Error(n, StrCat(w, ": cluster id ", cl.id, " twice"));
      cl.options = c.Options(n["options"], w + ".options", out.options);
      out.clusters.push_back(std::move(cl));
    });
    if (out.clusters.empty()) c.Error(root, "clusters: at least one cluster is needed");

    auto known_cluster = [&](const YAML::Node& n, const std::string& w, const std::string& name) {
      if (!name.empty() && !out.Cluster(name)) c.Error(n, StrCat(w, ": unknown cluster \"", name, "\""));
    };
    c.Seq(root, "namespaces", "", [&](const YAML::Node& n, const std::string& w) {
      c.Keys(n, w, {"cluster", "name", "labels"});
      ScenarioNamespace ns;
      ns.cluster = c.Str(n, "cluster", w, true);
      ns.name = c.Str(n, "name", w, true);
      ns.labels = c.Map(n, "labels", w);
      known_cluster(n, w, ns.cluster);
      out.namespaces.push_back(std::move(ns));
    });
    std::set<std::string> ep_keys;
    auto check_ep = [&](const YAML::Node& n, const std::string& w, const ScenarioEndpoint& e) {
      known_cluster(n, w, e.cluster);
      if (!ep_keys.insert(e.Key()).second) c.Error(n, StrCat(w, ": endpoint ", e.Key(), " twice"));
    };
    c.Seq(root, "endpoints", "", [&](const YAML::Node& n, const std::string& w) {
      auto e = c.Endpoint(n, w);
      check_ep(n, w, e);
      out.endpoints.push_back(std::move(e));
    });
    c.Seq(root, "external", "", [&](const YAML::Node& n, const std::string& w) {
      c.Keys(n, w, {"name", "ipv4", "ipv6", "via"});
      ScenarioExternal x;
      x.name = c.Str(n, "name", w, true);
      x.via = c.Str(n, "via", w, true);
      x.ipv4 = c.Addr(n, "ipv4", w, identity::Family::kIpv4);
      x.ipv6 = c.Addr(n, "ipv6", w, identity::Family::kIpv6);
      if (!n["ipv4"] && !n["ipv6"]) c.Error(n, StrCat(w, ": needs at least one address"));
      known_cluster(n, w, x.via);
      out.external.push_back(std::move(x));
    });

    // The YAML blocks, with their line offsets.
    ScenarioManifests sm;
    ExtractScenarioManifests(text, file, sm, diags);
    auto block = [&](const std::string& where) -> std::optional<EmbeddedManifest> {
      for (const auto& b : sm.blocks) {
        if (b.where == where) return b;
      }
      return std::nullopt;
    };
    c.Seq(root, "manifests", "", [&](const YAML::Node& n, const std::string& w) {
      c.Keys(n, w, {"cluster", "yaml"});
      std::string cl = c.Str(n, "cluster", w, true);
      known_cluster(n, w, cl);
      if (auto b = block(w)) out.manifests.push_back(*b);
    });

    c.Seq(root, "steps", "", [&](const YAML::Node& s, const std::string& w) {
      c.Keys(s, w, {"name", "apply", "delete", "removeEndpoints", "addEndpoints", "probes"});
      ScenarioStep st;
      st.name = c.Str(s, "name", w, false, w);
      c.Seq(s, "apply", w, [&](const YAML::Node& n, const std::string& w2) {
        c.Keys(n, w2, {"cluster", "yaml"});
        std::string cl = c.Str(n, "cluster", w2, true);
        known_cluster(n, w2, cl);
        if (auto b = block(w2)) st.apply.push_back(*b);
      });
      c.Seq(s, "delete", w, [&](const YAML::Node& n, const std::string& w2) {
        c.Keys(n, w2, {"cluster", "kind", "name", "namespace"});
        ScenarioDelete d;
        d.cluster = c.Str(n, "cluster", w2, true);
        d.kind = c.Str(n, "kind", w2, true);
        d.name = c.Str(n, "name", w2, true);
        d.ns = c.Str(n, "namespace", w2, false, "default");
        known_cluster(n, w2, d.cluster);
        st.del.push_back(std::move(d));
      });
      c.Seq(s, "removeEndpoints", w, [&](const YAML::Node& n, const std::string& w2) {
        std::string k = n.IsScalar() ? n.Scalar() : "";
        if (k.find('/') == std::string::npos) c.Error(n, StrCat(w2, ": expected cluster/endpoint"));
        st.remove_endpoints.push_back(k);
      });
      c.Seq(s, "addEndpoints", w, [&](const YAML::Node& n, const std::string& w2) {
        auto e = c.Endpoint(n, w2);
        known_cluster(n, w2, e.cluster);
        st.add_endpoints.push_back(std::move(e));
      });
      c.Seq(s, "probes", w, [&](const YAML::Node& n, const std::string& w2) {
        c.Keys(n, w2, {"from", "to", "port", "protocol", "icmpType", "family", "flow", "expect",
                       "servedBy", "backend", "dropReason", "droppedBy"});
        Probe p;
        p.line = c.Line(n);
        p.from = c.Str(n, "from", w2, true);
        p.to = c.Str(n, "to", w2, true);
        p.protocol = c.Str(n, "protocol", w2, false, "TCP");
        if (!kProtocols.contains(p.protocol)) {
          c.Error(n["protocol"], StrCat(w2, ".protocol: \"", p.protocol,
                                        "\" (expected TCP, UDP, SCTP, ICMP or ICMPv6)"));
        }
        bool icmp = p.protocol == "ICMP" || p.protocol == "ICMPv6";
        auto port = c.UInt(n, "port", w2, 65535);
        p.port = uint16_t(port.value_or(0));
        if (!icmp && (!port || *port == 0)) c.Error(n, StrCat(w2, ": a ", p.protocol, " probe needs a port 1..65535"));
        if (auto t = c.UInt(n, "icmpType", w2, 255)) p.icmp_type = uint8_t(*t);
        std::string fam = c.Str(n, "family", w2, false, p.protocol == "ICMPv6" ? "ipv6" : "ipv4");
        if (fam != "ipv4" && fam != "ipv6") c.Error(n["family"], StrCat(w2, ".family: \"", fam, "\" (expected ipv4 or ipv6)"));
        p.family = fam == "ipv6" ? 6 : 4;
        if ((p.protocol == "ICMP" && p.family == 6) || (p.protocol == "ICMPv6" && p.family == 4)) {
          c.Error(n, StrCat(w2, ": ", p.protocol, " with family ", fam));
        }
        p.flow = c.Str(n, "flow", w2, false);
        p.expect = c.Str(n, "expect", w2, true);
        if (p.expect != "allow" && p.expect != "deny" && p.expect != "audit" && !p.expect.empty()) {
          c.Error(n["expect"], StrCat(w2, ".expect: \"", p.expect, "\" (expected allow, deny or audit)"));
        }
        p.served_by = c.Str(n, "servedBy", w2, false);
        p.backend = c.Str(n, "backend", w2, false);
        p.drop_reason = c.Str(n, "dropReason", w2, false);
        p.dropped_by = c.Str(n, "droppedBy", w2, false);
        known_cluster(n, w2, p.served_by);
        known_cluster(n, w2, p.dropped_by);
        st.probes.push_back(std::move(p));
      });
      out.steps.push_back(std::move(st));
    });
  } catch (const YAML::Exception& e) {
    diags.push_back({file, e.mark.is_null() ? 0 : e.mark.line + 1, StrCat("scenario: ", e.msg)});
  }
  return diags.size() == first;
}

}  // namespace meshgate::control
