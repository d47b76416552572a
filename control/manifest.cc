#include "control/manifest.h"

#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "identity/strutil.h"
#include "identity/endpoint.h"
#include "yaml-cpp/yaml.h"

namespace meshgate::control {
namespace {

int LineOf(const YAML::Node& n) { return n.IsDefined() ? n.Mark().line + 1 : 0; }

// Kubernetes Service (core/v1), the fields the load balancer uses.
bool ParseService(const YAML::Node& doc, const ParseContext& ctx, lb::Service& s,
                  std::vector<Diagnostic>& diags) {
  size_t first = diags.size();
  auto err = [&](const YAML::Node& n, std::string m) {
    diags.push_back({ctx.file, LineOf(n), std::move(m)});
  };
  s = lb::Service();
  s.file = ctx.file;
  s.line = LineOf(doc);
  if (doc["apiVersion"].as<std::string>("") != "v1") {
    err(doc["apiVersion"] ? doc["apiVersion"] : doc, "Service: apiVersion must be v1");
  }
  auto md = doc["metadata"];
  if (!md || !md.IsMap() || !md["name"] || !md["name"].IsScalar()) {
    err(md ? md : doc, "Service: metadata.name is required");
    return false;
  }
  s.name = md["name"].Scalar();
  s.ns = md["namespace"] ? md["namespace"].as<std::string>(ctx.default_namespace)
                         : ctx.default_namespace;
  if (auto a = md["annotations"]; a && a.IsMap()) {
    for (auto it : a) s.annotations[it.first.as<std::string>("")] = it.second.as<std::string>("");
  }
  s.global = lb::ParseGlobalAnnotations(s.annotations);
  auto spec = doc["spec"];
  if (!spec || !spec.IsMap()) {
    err(doc, "Service: spec is required");
    return false;
  }
  std::string id = meshgate::StrCat("Service ", s.ns, "/", s.name, ": ");
  if (auto t = spec["type"]; t) {
    s.type = t.as<std::string>("");
    if (s.type != "ClusterIP" && s.type != "NodePort" && s.type != "LoadBalancer" &&
        s.type != "ExternalName") {
      err(t, meshgate::StrCat(id, "spec.type: unknown type \"", s.type, "\""));
    }
  }
  auto add_ip = [&](const YAML::Node& n, std::string_view where, bool cluster_ip = false) {
    auto text = n.as<std::string>("");
    if (text == "None" || text.empty()) return;  // headless
    auto ip = identity::IpAddr::Parse(text);
    if (!ip.ok()) {
      err(n, meshgate::StrCat(id, where, ": ", ip.status().message()));
      return;
    }
    if (std::find(s.frontends.begin(), s.frontends.end(), *ip) == s.frontends.end()) {
      s.frontends.push_back(*ip);
      if (cluster_ip) s.cluster_ips.push_back(*ip);
    }
  };
  if (auto c = spec["clusterIP"]; c) add_ip(c, "spec.clusterIP", true);
  if (auto c = spec["clusterIPs"]; c && c.IsSequence()) {
    for (size_t i = 0; i < c.size(); ++i) add_ip(c[i], meshgate::StrCat("spec.clusterIPs[", i, "]"), true);
  }
  if (auto c = spec["externalIPs"]; c && c.IsSequence()) {
    for (size_t i = 0; i < c.size(); ++i) add_ip(c[i], meshgate::StrCat("spec.externalIPs[", i, "]"));
  }
  if (auto st = doc["status"]; st && st["loadBalancer"] && st["loadBalancer"]["ingress"]) {
    auto ing = st["loadBalancer"]["ingress"];
    for (size_t i = 0; ing.IsSequence() && i < ing.size(); ++i) {
      if (ing[i]["ip"]) add_ip(ing[i]["ip"], meshgate::StrCat("status.loadBalancer.ingress[", i, "].ip"));
    }
  }
  if (auto sel = spec["selector"]; sel && sel.IsMap()) {
    for (auto it : sel) s.selector[it.first.as<std::string>("")] = it.second.as<std::string>("");
  }
  if (auto sa = spec["sessionAffinity"]; sa) {
    auto v = sa.as<std::string>("");
    if (v == "ClientIP") s.session_affinity_client_ip = true;
    else if (v != "None") err(sa, meshgate::StrCat(id, "spec.sessionAffinity: want None or ClientIP"));
    if (auto t = spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]; t) {
      long v2 = t.as<long>(-1);
      if (v2 < 1 || v2 > 86400) err(t, meshgate::StrCat(id, "timeoutSeconds: want 1..86400"));
      else s.session_affinity_timeout_s = uint32_t(v2);
    }
  }
  auto ports = spec["ports"];
  if (s.type != "ExternalName" && (!ports || !ports.IsSequence() || ports.size() == 0)) {
    err(spec, meshgate::StrCat(id, "spec.ports: at least one port is required"));
  }
  for (size_t i = 0; ports && ports.IsSequence() && i < ports.size(); ++i) {
    auto p = ports[i];
    auto w = meshgate::StrCat(id, "spec.ports[", i, "]");
    lb::ServicePort sp;
    sp.name = p["name"].as<std::string>("");
    long port = p["port"] ? p["port"].as<long>(-1) : -1;
    if (port < 1 || port > 65535) {
      err(p["port"] ? p["port"] : p, meshgate::StrCat(w, ".port: want 1..65535"));
      continue;
    }
    sp.port = uint16_t(port);
    std::string proto = p["protocol"].as<std::string>("TCP");
    if (proto == "TCP") sp.proto = identity::kProtoTcp;
    else if (proto == "UDP") sp.proto = identity::kProtoUdp;
    else if (proto == "SCTP") sp.proto = identity::kProtoSctp;
    else {
      err(p["protocol"], meshgate::StrCat(w, ".protocol: want TCP, UDP or SCTP"));
      continue;
    }
    sp.target_port = sp.port;  // Kubernetes' default: targetPort = port
    if (auto tp = p["targetPort"]; tp) {
      auto t = tp.as<std::string>("");
      if (!t.empty() && std::all_of(t.begin(), t.end(), ::isdigit)) {
        long v = tp.as<long>(-1);
        if (v < 1 || v > 65535) {
          err(tp, meshgate::StrCat(w, ".targetPort: want 1..65535 or a port name"));
          continue;
        }
        sp.target_port = uint16_t(v);
      } else {
        sp.target_port = 0;
        sp.target_port_name = t;
      }
    }
    if (auto np = p["nodePort"]; np) sp.node_port = uint16_t(np.as<long>(0));
    s.ports.push_back(sp);
  }
  return diags.size() == first;
}

void ParseDocument(const YAML::Node& doc, const ParseContext& ctx, Manifests& out,
                   std::vector<Diagnostic>& diags) {
  if (!doc || doc.IsNull()) return;
  if (!doc.IsMap()) {
    diags.push_back({ctx.file, LineOf(doc), "expected a Kubernetes object (a mapping)"});
    return;
  }
  std::string kind = doc["kind"] ? doc["kind"].as<std::string>("") : "";
  if (kind == "List") {
    auto items = doc["items"];
    for (size_t i = 0; items && items.IsSequence() && i < items.size(); ++i) {
      ParseDocument(items[i], ctx, out, diags);
    }
    return;
  }
  if (classifier::IsPolicyKind(kind)) {
    classifier::Policy p;
    if (classifier::ParsePolicyDocument(doc, ctx, p, diags)) out.policies.push_back(std::move(p));
  } else if (kind == "Service") {
    lb::Service s;
    if (ParseService(doc, ctx, s, diags)) out.services.push_back(std::move(s));
  } else if (kind.empty()) {
    diags.push_back({ctx.file, LineOf(doc), "document has no \"kind\""});
  } else {
    diags.push_back({ctx.file, LineOf(doc),
                     meshgate::StrCat("unsupported kind \"", kind,
                                  "\" (want Service, CiliumNetworkPolicy, "
                                  "CiliumClusterwideNetworkPolicy or NetworkPolicy)")});
  }
}

}  // namespace

std::vector<std::pair<std::string, int>> SplitDocuments(std::string_view text) {
  std::vector<std::pair<std::string, int>> docs;
  static const std::regex kSeparator(R"(^(---|\.\.\.)(\s.*)?$)");
  std::string cur;
  int start = 0, line = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string l(text.substr(pos, eol - pos));
    if (std::regex_match(l, kSeparator)) {
      docs.emplace_back(std::move(cur), start);
      cur.clear();
      start = line + 1;
      // "--- |" style content after the marker is rare in manifests; keep it.
      if (l.size() > 4 && l[0] == '-') cur = l.substr(4) + "\n";
    } else {
      cur += l;
      cur += '\n';
    }
    ++line;
    pos = eol + 1;
  }
  docs.emplace_back(std::move(cur), start);
  return docs;
}

bool ParseManifests(std::string_view text, const ParseContext& ctx, Manifests& out,
                    std::vector<Diagnostic>& diags, int line_offset) {
  size_t first = diags.size();
  // Each document on its own, so that one malformed document does not hide
  // the others' errors (and the others still parse).
  for (const auto& [doc, start] : SplitDocuments(text)) {
    size_t before = diags.size();
    try {
      ParseDocument(YAML::Load(doc), ctx, out, diags);
    } catch (const YAML::Exception& e) {  // the edge: malformed YAML
      diags.push_back({ctx.file, e.mark.is_null() ? 0 : e.mark.line + 1,
                       meshgate::StrCat("invalid YAML: ", e.msg)});
    }
    for (size_t i = before; i < diags.size(); ++i) {
      if (diags[i].line > 0) diags[i].line += start + line_offset;
    }
  }
  return diags.size() == first;
}

bool IsScenarioDocument(std::string_view text) {
  try {
    auto n = YAML::Load(std::string(text));
    return n.IsMap() && n["clusters"] && (n["steps"] || n["manifests"]);
  } catch (const YAML::Exception&) {
    return false;
  }
}

bool ExtractScenarioManifests(std::string_view text, const std::string& file,
                              ScenarioManifests& out, std::vector<Diagnostic>& diags) {
  size_t first = diags.size();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    diags.push_back({file, e.mark.is_null() ? 0 : e.mark.line + 1,
                     meshgate::StrCat("invalid YAML: ", e.msg)});
    return false;
  }
  bool default_local = root["options"]["policyDefaultLocalCluster"].as<bool>(false);
  if (auto cl = root["clusters"]; cl && cl.IsSequence()) {
    for (auto c : cl) {
      bool local = default_local;
      if (auto o = c["options"]["policyDefaultLocalCluster"]; o) local = o.as<bool>(local);
      out.clusters.emplace_back(c["name"].as<std::string>(""), local);
    }
  }
  // A block scalar ("|" or ">", maybe after an anchor) starts on the line
  // below its indicator; a flow scalar starts on its own line.
  static const std::regex kBlockIndicator(R"(^(&\S+\s+)?(!\S*\s+)?[|>][-+0-9]*\s*(#.*)?$)");
  auto content_offset = [&](const YAML::Node& y) {
    size_t pos = size_t(y.Mark().pos);
    size_t eol = text.find('\n', pos);
    std::string rest(text.substr(pos, eol == std::string_view::npos ? eol : eol - pos));
    return std::regex_match(rest, kBlockIndicator) ? LineOf(y) : LineOf(y) - 1;
  };
  auto block = [&](const YAML::Node& m, std::string where) {
    auto y = m["yaml"];
    if (!y || !y.IsScalar()) {
      diags.push_back({file, LineOf(m), meshgate::StrCat(where, ": missing yaml")});
      return;
    }
    EmbeddedManifest em;
    em.cluster = m["cluster"].as<std::string>("");
    em.yaml = y.Scalar();
    // A block scalar's mark is its indicator line; content starts below it.
    // A plain or quoted scalar (or an alias) starts on its own line.
    em.line_offset = content_offset(y);
    em.where = std::move(where);
    out.blocks.push_back(std::move(em));
  };
  if (auto ms = root["manifests"]; ms && ms.IsSequence()) {
    for (size_t i = 0; i < ms.size(); ++i) block(ms[i], meshgate::StrCat("manifests[", i, "]"));
  }
  if (auto steps = root["steps"]; steps && steps.IsSequence()) {
    for (size_t i = 0; i < steps.size(); ++i) {
      auto ap = steps[i]["apply"];
      for (size_t j = 0; ap && ap.IsSequence() && j < ap.size(); ++j) {
        block(ap[j], meshgate::StrCat("steps[", i, "].apply[", j, "]"));
      }
    }
  }
  return diags.size() == first;
}

CheckResult CheckFiles(const std::vector<std::string>& files, const ParseContext& base) {
  CheckResult r;
  for (const auto& f : files) {
    ++r.files;
    std::ifstream in(f);
    if (!in) {
      r.diags.push_back({f, 0, "cannot open file"});
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    ParseContext ctx = base;
    ctx.file = f;
    Manifests m;
    if (IsScenarioDocument(text)) {
      ScenarioManifests sm;
      ExtractScenarioManifests(text, f, sm, r.diags);
      for (const auto& b : sm.blocks) {
        ParseContext bctx = ctx;
        bctx.cluster_name = b.cluster;
        for (const auto& [name, local] : sm.clusters) {
          if (name == b.cluster) bctx.policy_default_local_cluster = local;
        }
        ParseManifests(b.yaml, bctx, m, r.diags, b.line_offset);
      }
    } else {
      ParseManifests(text, ctx, m, r.diags);
    }
    r.policies += int(m.policies.size());
    // An aliased block applied twice reports the same error twice: once is enough.
    std::vector<Diagnostic> unique;
    for (auto& d : r.diags) {
      bool dup = false;
      for (const auto& u : unique) dup = dup || (u.file == d.file && u.line == d.line && u.message == d.message);
      if (!dup) unique.push_back(std::move(d));
    }
    r.diags = std::move(unique);
    r.services += int(m.services.size());
  }
  return r;
}

}  // namespace meshgate::control
