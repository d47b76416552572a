#include "classifier/policy_yaml.h"

#include <charconv>
#include <regex>
#include <set>
#include <span>

#include "identity/strutil.h"
#include "absl/strings/str_join.h"
#include "identity/endpoint.h"
#include "identity/labels.h"

namespace meshgate::classifier {
namespace {

using identity::Prefix;
using identity::Requirement;
using identity::SelectorOp;

int LineOf(const YAML::Node& n) { return n.IsDefined() ? n.Mark().line + 1 : 0; }

// ICMP type names, cilium-semantics.md §1.5 (Cilium layer4.rst, api/l4.go).
const std::pair<std::string_view, int> kIcmpV4Types[] = {
    {"EchoReply", 0},          {"DestinationUnreachable", 3}, {"Redirect", 5},
    {"Echo", 8},               {"EchoRequest", 8},          {"RouterAdvertisement", 9},
    {"RouterSelection", 10},   {"TimeExceeded", 11},        {"ParameterProblem", 12},
    {"Timestamp", 13},         {"TimestampReply", 14},      {"Photuris", 40},
    {"ExtendedEchoRequest", 42}, {"ExtendedEchoReply", 43},
};
const std::pair<std::string_view, int> kIcmpV6Types[] = {
    {"DestinationUnreachable", 1}, {"PacketTooBig", 2}, {"TimeExceeded", 3},
    {"ParameterProblem", 4}, {"EchoRequest", 128}, {"EchoReply", 129},
    {"MulticastListenerQuery", 130}, {"MulticastListenerReport", 131},
    {"MulticastListenerDone", 132}, {"RouterSolicitation", 133},
    {"RouterAdvertisement", 134}, {"NeighborSolicitation", 135},
    {"NeighborAdvertisement", 136}, {"RedirectMessage", 137},
    {"RouterRenumbering", 138}, {"ICMPNodeInformationQuery", 139},
    {"ICMPNodeInformationResponse", 140},
    {"InverseNeighborDiscoverySolicitation", 141},
    {"InverseNeighborDiscoveryAdvertisement", 142},
    {"HomeAgentAddressDiscoveryRequest", 144},
    {"HomeAgentAddressDiscoveryReply", 145}, {"MobilePrefixSolicitation", 146},
    {"MobilePrefixAdvertisement", 147},
    {"DuplicateAddressRequestCodeSuffix", 157},
    {"DuplicateAddressConfirmationCodeSuffix", 158},
    {"ExtendedEchoRequest", 160}, {"ExtendedEchoReply", 161},
};

// Fields that meshgate refuses, with the reason given to the user.
struct Unsupported {
  std::string_view field;
  std::string_view why;
};
constexpr Unsupported kUnsupportedPeerFields[] = {
    {"fromRequires", "deprecated since Cilium 1.17 and not supported"},
    {"toRequires", "deprecated since Cilium 1.17 and not supported"},
    {"toFQDNs", "DNS-based policy needs an L7 DNS proxy, which meshgate does not have"},
    {"toServices", "service-based egress policy is not supported"},
    {"fromGroups", "cloud provider groups are not supported"},
    {"toGroups", "cloud provider groups are not supported"},
    {"authentication", "mutual authentication is not supported"},
};
constexpr Unsupported kUnsupportedPortRuleFields[] = {
    {"rules", "L7 rules need a proxy; meshgate enforces L3/L4 only"},
    {"terminatingTLS", "TLS interception needs a proxy"},
    {"originatingTLS", "TLS interception needs a proxy"},
    {"serverNames", "SNI matching needs a proxy"},
    {"listener", "Envoy listeners are not supported"},
};

constexpr Unsupported kUnsupportedCidrSetFields[] = {
    {"cidrGroupRef", "CiliumCIDRGroup is not supported"},
    {"cidrGroupSelector", "CiliumCIDRGroup is not supported"},
};
constexpr Unsupported kUnsupportedRuleFields[] = {
    {"nodeSelector",
     "host policies (nodeSelector) are not supported; meshgate enforces endpoint policies only"},
};

class Parser {
 public:
  Parser(const ParseContext& ctx, std::vector<Diagnostic>& diags, PolicyKind kind,
         std::string ns)
      : ctx_(ctx), diags_(diags), kind_(kind), ns_(std::move(ns)) {}

  int errors() const { return errors_; }

  void Error(const YAML::Node& n, std::string msg) {
    diags_.push_back({ctx_.file, LineOf(n), std::move(msg)});
    ++errors_;
  }
  void ErrorAt(int line, std::string msg) {
    diags_.push_back({ctx_.file, line, std::move(msg)});
    ++errors_;
  }

  // Checks that every key of map `n` is in `allowed`; reports the others.
  bool CheckKeys(const YAML::Node& n, std::string_view where,
                 std::initializer_list<std::string_view> allowed,
                 std::span<const Unsupported> unsupported = {}) {
    if (!n.IsMap()) {
      Error(n, meshgate::StrCat(where, ": expected a mapping"));
      return false;
    }
    bool ok = true;
    for (auto it : n) {
      std::string k = it.first.as<std::string>("");
      bool known = false;
      for (auto a : allowed) known = known || a == k;
      if (known) continue;
      ok = false;
      bool reported = false;
      for (const auto& u : unsupported) {
        if (u.field == k) {
          Error(it.first, meshgate::StrCat(where, ".", k, ": not supported: ", u.why));
          reported = true;
        }
      }
      if (!reported) Error(it.first, meshgate::StrCat(where, ": unknown field \"", k, "\""));
    }
    return ok;
  }

  std::optional<std::string> Scalar(const YAML::Node& n, std::string_view where) {
    if (!n.IsScalar()) {
      Error(n, meshgate::StrCat(where, ": expected a string"));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> Int(const YAML::Node& n, std::string_view where, int64_t lo,
                             int64_t hi) {
    if (!n.IsScalar()) {
      Error(n, meshgate::StrCat(where, ": expected an integer"));
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      Error(n, meshgate::StrCat(where, ": expected an integer, got \"", s, "\""));
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      Error(n, meshgate::StrCat(where, ": ", v, " is out of range ", lo, "..", hi));
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> Bool(const YAML::Node& n, std::string_view where) {
    if (n.IsScalar()) {
      if (n.Scalar() == "true") return true;
      if (n.Scalar() == "false") return false;
    }
    Error(n, meshgate::StrCat(where, ": expected true or false"));
    return std::nullopt;
  }

  // A Kubernetes LabelSelector {matchLabels, matchExpressions}.
  std::optional<Selector> LabelSelector(const YAML::Node& n, std::string_view where,
                                        std::string_view key_prefix = "") {
    if (n.IsNull()) return Selector();
    if (!CheckKeys(n, where, {"matchLabels", "matchExpressions"})) return std::nullopt;
    std::vector<Requirement> reqs;
    bool ok = true;
    if (auto ml = n["matchLabels"]; ml && !ml.IsNull()) {
      if (!ml.IsMap()) {
        Error(ml, meshgate::StrCat(where, ".matchLabels: expected a mapping"));
        return std::nullopt;
      }
      for (auto it : ml) {
        auto k = it.first.as<std::string>("");
        if (!it.second.IsScalar()) {
          Error(it.second, meshgate::StrCat(where, ".matchLabels.", k, ": expected a string"));
          ok = false;
          continue;
        }
        reqs.push_back(Requirement::Make(meshgate::StrCat(key_prefix, k), SelectorOp::kIn,
                                         {it.second.Scalar()}));
      }
    }
    if (auto me = n["matchExpressions"]; me && !me.IsNull()) {
      if (!me.IsSequence()) {
        Error(me, meshgate::StrCat(where, ".matchExpressions: expected a list"));
        return std::nullopt;
      }
      for (size_t i = 0; i < me.size(); ++i) {
        auto e = me[i];
        auto w = meshgate::StrCat(where, ".matchExpressions[", i, "]");
        if (!CheckKeys(e, w, {"key", "operator", "values"})) {
          ok = false;
          continue;
        }
        auto key = e["key"] ? Scalar(e["key"], w + ".key") : std::nullopt;
        auto opname = e["operator"] ? Scalar(e["operator"], w + ".operator") : std::nullopt;
        if (!e["key"]) Error(e, w + ": missing \"key\"");
        if (!e["operator"]) Error(e, w + ": missing \"operator\"");
        if (!key || !opname) {
          ok = false;
          continue;
        }
        auto op = identity::ParseSelectorOp(*opname);
        if (!op.ok()) {
          Error(e["operator"], meshgate::StrCat(w, ".operator: ", op.status().message()));
          ok = false;
          continue;
        }
        std::vector<std::string> values;
        if (auto v = e["values"]; v && !v.IsNull()) {
          if (!v.IsSequence()) {
            Error(v, w + ".values: expected a list");
            ok = false;
            continue;
          }
          for (auto x : v) values.push_back(x.as<std::string>(""));
        }
        bool wants_values = *op == SelectorOp::kIn || *op == SelectorOp::kNotIn;
        if (wants_values && values.empty()) {
          Error(e, meshgate::StrCat(w, ": operator ", *opname, " needs non-empty values"));
          ok = false;
          continue;
        }
        if (!wants_values && !values.empty()) {
          Error(e, meshgate::StrCat(w, ": operator ", *opname, " takes no values"));
          ok = false;
          continue;
        }
        reqs.push_back(Requirement::Make(meshgate::StrCat(key_prefix, *key), *op, values));
      }
    }
    if (!ok) return std::nullopt;
    return Selector(std::move(reqs));
  }

  std::string LocalClusterForPolicies() const {
    return ctx_.policy_default_local_cluster ? ctx_.cluster_name : "";
  }

  // Cilium addClusterFilterByDefault.
  void AddClusterFilter(Selector& s) const {
    auto local = LocalClusterForPolicies();
    if (local.empty() || s.HasSource(identity::kSourceReserved) ||
        s.HasKey(identity::kPolicyClusterLabel)) {
      return;
    }
    s.Add(Requirement::Make(meshgate::StrCat("k8s:", identity::kPolicyClusterLabel),
                            SelectorOp::kIn, {local}));
  }

  // Cilium getEndpointSelector for from/toEndpoints.
  Selector ScopePeer(Selector s) const {
    if (s.HasSource(identity::kSourceReserved)) return s;
    if (!s.HasKey(identity::kPodNamespaceLabel)) {
      std::string k = meshgate::StrCat("k8s:", identity::kPodNamespaceLabel);
      if (kind_ == PolicyKind::kCiliumClusterwideNetworkPolicy) {
        s.Add(Requirement::Make(k, SelectorOp::kExists));
      } else if (!s.HasKeyPrefix(identity::kNamespaceLabelsPrefix)) {
        s.Add(Requirement::Make(k, SelectorOp::kIn, {ns_}));
      }
    }
    AddClusterFilter(s);
    return s;
  }

  // The subject: a CNP always selects in its own namespace (a differing
  // namespace requirement is overridden, as Cilium does).
  Selector ScopeSubject(Selector s) const {
    if (kind_ == PolicyKind::kCiliumClusterwideNetworkPolicy) return s;
    std::vector<Requirement> reqs;
    for (const auto& r : s.requirements()) {
      if (r.key == identity::kPodNamespaceLabel &&
          (r.source == identity::kSourceAny || r.source == identity::kSourceK8s)) {
        continue;
      }
      reqs.push_back(r);
    }
    reqs.push_back(Requirement::Make(meshgate::StrCat("k8s:", identity::kPodNamespaceLabel),
                                     SelectorOp::kIn, {ns_}));
    return Selector(std::move(reqs));
  }

  // Entities, Cilium pkg/policy/api/entity.go EntitySelectorMapping.
  bool Entity(const YAML::Node& n, std::string_view where, std::vector<Selector>& out) {
    auto name = Scalar(n, where);
    if (!name) return false;
    auto reserved = [&](std::string_view r) {
      out.push_back(Selector::HasLabel(meshgate::StrCat("reserved:", r)));
    };
    if (*name == "all") {
      out.push_back(Selector());
    } else if (*name == "world") {
      reserved("world");
      reserved("world-ipv4");
      reserved("world-ipv6");
    } else if (*name == "cluster") {
      for (auto r : {"host", "remote-node", "init", "ingress", "health", "unmanaged",
                     "kube-apiserver"}) {
        reserved(r);
      }
      out.push_back(Selector::MatchLabel(
          meshgate::StrCat("k8s:", identity::kPolicyClusterLabel), ctx_.cluster_name));
    } else if (*name == "world-ipv4" || *name == "world-ipv6" || *name == "host" ||
               *name == "remote-node" || *name == "kube-apiserver" ||
               *name == "ingress" || *name == "init" || *name == "health" ||
               *name == "unmanaged" || *name == "none") {
      reserved(*name);
    } else {
      Error(n, meshgate::StrCat(where, ": unknown entity \"", *name,
                            "\" (want all, world, cluster, host, remote-node, "
                            "kube-apiserver, ingress, init, health, unmanaged, none, "
                            "world-ipv4, world-ipv6)"));
      return false;
    }
    return true;
  }

  // A CIDR or CIDR set: selectors on `cidr:` labels. /0 also means world
  // ("Allowing world is identical to allowing to CIDR 0.0.0.0/0").
  bool Cidr(const YAML::Node& n, std::string_view where,
            const std::vector<std::pair<YAML::Node, std::string>>& except,
            PeerRule& pr) {
    auto text = Scalar(n, where);
    if (!text) return false;
    auto p = Prefix::Parse(*text);
    if (!p.ok()) {
      Error(n, meshgate::StrCat(where, ": ", p.status().message()));
      return false;
    }
    Selector s({Requirement::Make(identity::Label::Cidr(*p).ToString(),
                                  SelectorOp::kExists)});
    pr.cidrs.push_back(*p);
    for (const auto& [en, ew] : except) {
      auto et = Scalar(en, ew);
      if (!et) return false;
      auto e = Prefix::Parse(*et);
      if (!e.ok()) {
        Error(en, meshgate::StrCat(ew, ": ", e.status().message()));
        return false;
      }
      if (!p->Covers(*e)) {
        Error(en, meshgate::StrCat(ew, ": ", e->ToString(), " is not within ", p->ToString()));
        return false;
      }
      s.Add(Requirement::Make(identity::Label::Cidr(*e).ToString(),
                              SelectorOp::kDoesNotExist));
      pr.cidrs.push_back(*e);
    }
    pr.peers.push_back(std::move(s));
    if (p->len == 0 && except.empty()) {
      pr.peers.push_back(Selector::HasLabel("reserved:world"));
      pr.peers.push_back(Selector::HasLabel(p->addr.family == identity::Family::kIpv4
                                                ? "reserved:world-ipv4"
                                                : "reserved:world-ipv6"));
    }
    return true;
  }

  bool ListOf(const YAML::Node& n, std::string_view where) {
    if (n.IsNull()) return true;  // `fromEndpoints:` with nothing = nil in Go
    if (!n.IsSequence()) {
      Error(n, meshgate::StrCat(where, ": expected a list"));
      return false;
    }
    return true;
  }

  // PortProtocol list of one PortRule.
  void Ports(const YAML::Node& n, std::string_view where, PeerRule& pr) {
    if (!ListOf(n, where) || n.IsNull()) return;
    if (n.size() > 40) {
      Error(n, meshgate::StrCat(where, ": at most 40 ports per port rule (Cilium limit)"));
      return;
    }
    static const std::regex kNamed("([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*");
    for (size_t i = 0; i < n.size(); ++i) {
      auto pp = n[i];
      auto w = meshgate::StrCat(where, "[", i, "]");
      if (!CheckKeys(pp, w, {"port", "endPort", "protocol"})) continue;
      std::string proto = "ANY";
      if (pp["protocol"] && !pp["protocol"].IsNull()) {
        auto s = Scalar(pp["protocol"], w + ".protocol");
        if (!s) continue;
        proto = s->empty() ? "ANY" : *s;
      }
      std::vector<uint8_t> protos;
      if (proto == "TCP") protos = {identity::kProtoTcp};
      else if (proto == "UDP") protos = {identity::kProtoUdp};
      else if (proto == "SCTP") protos = {identity::kProtoSctp};
      else if (proto == "ANY")  // ANY = TCP, UDP, SCTP; never ICMP (rule.go)
        protos = {identity::kProtoTcp, identity::kProtoUdp, identity::kProtoSctp};
      else {
        Error(pp["protocol"], meshgate::StrCat(w, ".protocol: unknown protocol \"", proto,
                                           "\" (want TCP, UDP, SCTP or ANY)"));
        continue;
      }
      PortProto base;
      if (auto port = pp["port"]; port && !port.IsNull()) {
        auto s = Scalar(port, w + ".port");
        if (!s) continue;
        if (!s->empty() && std::all_of(s->begin(), s->end(), ::isdigit)) {
          auto v = Int(port, w + ".port", 0, 65535);
          if (!v) continue;
          base.port = uint16_t(*v);
          base.end_port = base.port;
        } else if (!s->empty()) {
          if (s->size() > 15 || !std::regex_match(*s, kNamed)) {
            Error(port, meshgate::StrCat(w, ".port: \"", *s,
                                     "\" is neither a port number nor a valid port name"));
            continue;
          }
          base.named = *s;
        }
      }
      if (auto ep = pp["endPort"]; ep && !ep.IsNull() && base.named.empty()) {
        auto v = Int(ep, w + ".endPort", 0, 65535);
        if (!v) continue;
        if (*v != 0) {
          if (*v < base.port) {
            Error(ep, meshgate::StrCat(w, ".endPort: ", *v, " is below port ", base.port));
            continue;
          }
          base.end_port = uint16_t(*v);
        }
      }
      if (base.named.empty() && base.port == 0) base.end_port = 65535;  // "0" = all ports
      for (auto p : protos) {
        PortProto x = base;
        x.proto = p;
        pr.ports.push_back(x);
      }
    }
  }

  void ToPorts(const YAML::Node& n, std::string_view where, PeerRule& pr) {
    pr.l4_present = true;
    if (!ListOf(n, where) || n.IsNull()) return;
    for (size_t i = 0; i < n.size(); ++i) {
      auto w = meshgate::StrCat(where, "[", i, "]");
      // PortDenyRule has only `ports`; PortRule's L7 members are refused.
      CheckKeys(n[i], w, {"ports"}, kUnsupportedPortRuleFields);
      if (n[i].IsMap() && n[i]["ports"]) Ports(n[i]["ports"], w + ".ports", pr);
    }
  }

  void Icmps(const YAML::Node& n, std::string_view where, PeerRule& pr) {
    pr.l4_present = true;
    if (!ListOf(n, where) || n.IsNull()) return;
    for (size_t i = 0; i < n.size(); ++i) {
      auto w = meshgate::StrCat(where, "[", i, "]");
      if (!CheckKeys(n[i], w, {"fields"})) continue;
      auto fields = n[i]["fields"];
      if (!fields || !ListOf(fields, w + ".fields") || fields.IsNull()) continue;
      for (size_t j = 0; j < fields.size(); ++j) {
        auto f = fields[j];
        auto fw = meshgate::StrCat(w, ".fields[", j, "]");
        if (!CheckKeys(f, fw, {"family", "type"})) continue;
        bool v6 = false;
        if (auto fam = f["family"]; fam && !fam.IsNull()) {
          auto s = Scalar(fam, fw + ".family");
          if (!s) continue;
          if (*s == "IPv6") v6 = true;
          else if (*s != "IPv4") {
            Error(fam, meshgate::StrCat(fw, ".family: want IPv4 or IPv6, got \"", *s, "\""));
            continue;
          }
        }
        auto t = f["type"];
        if (!t) {
          Error(f, fw + ": missing \"type\"");
          continue;
        }
        auto s = Scalar(t, fw + ".type");
        if (!s) continue;
        int type = -1;
        if (!s->empty() && std::all_of(s->begin(), s->end(), ::isdigit)) {
          auto v = Int(t, fw + ".type", 0, 255);
          if (!v) continue;
          type = int(*v);
        } else {
          for (const auto& [nm, v] : v6 ? std::span<const std::pair<std::string_view, int>>(kIcmpV6Types) : std::span<const std::pair<std::string_view, int>>(kIcmpV4Types)) {
            if (nm == *s) type = v;
          }
          if (type < 0) {
            Error(t, meshgate::StrCat(fw, ".type: unknown ", v6 ? "ICMPv6" : "ICMP",
                                  " type name \"", *s, "\""));
            continue;
          }
        }
        PortProto x;
        x.proto = v6 ? identity::kProtoIcmpv6 : identity::kProtoIcmp;
        x.port = x.end_port = uint16_t(type);
        pr.ports.push_back(x);
      }
    }
  }

  // One IngressRule / EgressRule / IngressDenyRule / EgressDenyRule.
  std::optional<PeerRule> Peer(const YAML::Node& n, std::string_view where,
                               Direction dir) {
    bool in = dir == Direction::kIngress;
    std::string_view eps = in ? "fromEndpoints" : "toEndpoints";
    std::string_view cidr = in ? "fromCIDR" : "toCIDR";
    std::string_view cidrset = in ? "fromCIDRSet" : "toCIDRSet";
    std::string_view ents = in ? "fromEntities" : "toEntities";
    std::string_view nodes = in ? "fromNodes" : "toNodes";
    if (n.IsNull()) {  // `- ` alone, as `{}`
      PeerRule pr;
      pr.line = LineOf(n);
      return pr;
    }
    int before = errors_;
    CheckKeys(n, where, {eps, cidr, cidrset, ents, nodes, "toPorts", "icmps"},
              kUnsupportedPeerFields);
    PeerRule pr;
    pr.line = LineOf(n);
    if (auto v = n[std::string(eps)]; v) {
      pr.l3_present = true;
      if (ListOf(v, meshgate::StrCat(where, ".", eps)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          auto s = LabelSelector(v[i], meshgate::StrCat(where, ".", eps, "[", i, "]"));
          if (s) pr.peers.push_back(ScopePeer(*s));
        }
      }
    }
    if (auto v = n[std::string(nodes)]; v) {
      pr.l3_present = true;
      if (ListOf(v, meshgate::StrCat(where, ".", nodes)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          auto s = LabelSelector(v[i], meshgate::StrCat(where, ".", nodes, "[", i, "]"));
          if (!s) continue;
          s->Add(Requirement::Make("reserved:remote-node", SelectorOp::kExists));
          AddClusterFilter(*s);
          pr.peers.push_back(*s);
        }
      }
    }
    if (auto v = n[std::string(ents)]; v) {
      pr.l3_present = true;
      if (ListOf(v, meshgate::StrCat(where, ".", ents)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          Entity(v[i], meshgate::StrCat(where, ".", ents, "[", i, "]"), pr.peers);
        }
      }
    }
    if (auto v = n[std::string(cidr)]; v) {
      pr.l3_present = true;
      if (ListOf(v, meshgate::StrCat(where, ".", cidr)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          Cidr(v[i], meshgate::StrCat(where, ".", cidr, "[", i, "]"), {}, pr);
        }
      }
    }
    if (auto v = n[std::string(cidrset)]; v) {
      pr.l3_present = true;
      if (ListOf(v, meshgate::StrCat(where, ".", cidrset)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          auto w = meshgate::StrCat(where, ".", cidrset, "[", i, "]");
          if (!CheckKeys(v[i], w, {"cidr", "except"},
                         kUnsupportedCidrSetFields)) {
            continue;
          }
          if (!v[i]["cidr"]) {
            Error(v[i], w + ": missing \"cidr\"");
            continue;
          }
          std::vector<std::pair<YAML::Node, std::string>> except;
          if (auto ex = v[i]["except"]; ex && ListOf(ex, w + ".except") && !ex.IsNull()) {
            for (size_t j = 0; j < ex.size(); ++j) {
              except.emplace_back(ex[j], meshgate::StrCat(w, ".except[", j, "]"));
            }
          }
          Cidr(v[i]["cidr"], w + ".cidr", except, pr);
        }
      }
    }
    if (auto v = n["toPorts"]; v) ToPorts(v, meshgate::StrCat(where, ".toPorts"), pr);
    if (auto v = n["icmps"]; v) Icmps(v, meshgate::StrCat(where, ".icmps"), pr);
    if (errors_ != before) return std::nullopt;
    return pr;
  }

  void Section(const YAML::Node& n, std::string_view where, Direction dir,
               std::vector<PeerRule>& out, bool* present = nullptr) {
    if (present != nullptr) *present = true;
    if (!ListOf(n, where) || n.IsNull()) return;
    for (size_t i = 0; i < n.size(); ++i) {
      auto pr = Peer(n[i], meshgate::StrCat(where, "[", i, "]"), dir);
      if (pr) out.push_back(std::move(*pr));
    }
  }

  // One Cilium api.Rule.
  std::optional<Rule> CiliumRule(const YAML::Node& n, std::string_view where) {
    int before = errors_;
    CheckKeys(n, where,
              {"endpointSelector", "ingress", "ingressDeny", "egress", "egressDeny",
               "labels", "description", "enableDefaultDeny", "log"},
              kUnsupportedRuleFields);
    Rule r;
    r.line = LineOf(n);
    if (!n.IsMap()) return std::nullopt;
    if (auto es = n["endpointSelector"]; es) {
      auto s = LabelSelector(es, meshgate::StrCat(where, ".endpointSelector"));
      if (s) r.subject = ScopeSubject(*s);
    } else if (!n["nodeSelector"]) {
      Error(n, meshgate::StrCat(where, ": one of endpointSelector or nodeSelector is required"));
    }
    struct {
      const char* key;
      Direction dir;
      std::vector<PeerRule>* out;
      bool* present;
    } sections[] = {{"ingress", Direction::kIngress, &r.ingress, &r.has_ingress},
                    {"ingressDeny", Direction::kIngress, &r.ingress_deny, nullptr},
                    {"egress", Direction::kEgress, &r.egress, &r.has_egress},
                    {"egressDeny", Direction::kEgress, &r.egress_deny, nullptr}};
    for (const auto& sec : sections) {
      if (auto v = n[sec.key]; v) {
        Section(v, meshgate::StrCat(where, ".", sec.key), sec.dir, *sec.out, sec.present);
      }
    }
    if (!n["ingress"] && !n["ingressDeny"] && !n["egress"] && !n["egressDeny"]) {
      // The CRD requires at least one section (matchN(>=1, ...)).
      Error(n, meshgate::StrCat(where, ": a rule needs at least one of ingress, "
                                   "ingressDeny, egress or egressDeny"));
    }
    if (auto d = n["enableDefaultDeny"]; d) {
      auto w = meshgate::StrCat(where, ".enableDefaultDeny");
      if (CheckKeys(d, w, {"ingress", "egress"})) {
        if (d["ingress"] && !d["ingress"].IsNull())
          r.default_deny_ingress = Bool(d["ingress"], w + ".ingress");
        if (d["egress"] && !d["egress"].IsNull())
          r.default_deny_egress = Bool(d["egress"], w + ".egress");
      }
    }
    if (auto d = n["description"]; d && d.IsScalar()) r.description = d.Scalar();
    if (errors_ != before) return std::nullopt;
    return r;
  }

  // A NetworkPolicyPeer (pkg/k8s/network_policy.go parseNetworkPolicyPeer).
  void NetPolPeer(const YAML::Node& n, std::string_view where, PeerRule& pr) {
    if (!CheckKeys(n, where, {"podSelector", "namespaceSelector", "ipBlock"})) return;
    if (auto ib = n["ipBlock"]; ib) {
      if (n["podSelector"] || n["namespaceSelector"]) {
        Error(n, meshgate::StrCat(where, ": ipBlock cannot be combined with selectors"));
        return;
      }
      auto w = meshgate::StrCat(where, ".ipBlock");
      if (!CheckKeys(ib, w, {"cidr", "except"})) return;
      if (!ib["cidr"]) {
        Error(ib, w + ": missing \"cidr\"");
        return;
      }
      std::vector<std::pair<YAML::Node, std::string>> except;
      if (auto ex = ib["except"]; ex && ListOf(ex, w + ".except") && !ex.IsNull()) {
        for (size_t j = 0; j < ex.size(); ++j) {
          except.emplace_back(ex[j], meshgate::StrCat(w, ".except[", j, "]"));
        }
      }
      Cidr(ib["cidr"], w + ".cidr", except, pr);
      return;
    }
    auto ps = n["podSelector"], nsel = n["namespaceSelector"];
    std::optional<Selector> sel = Selector();
    if (ps) sel = LabelSelector(ps, meshgate::StrCat(where, ".podSelector"), "k8s:");
    if (!sel) return;
    std::vector<Requirement> reqs = sel->requirements();
    std::string nskey = meshgate::StrCat("k8s:", identity::kPodNamespaceLabel);
    if (nsel) {
      auto ns = LabelSelector(nsel, meshgate::StrCat(where, ".namespaceSelector"),
                              meshgate::StrCat("k8s:", identity::kNamespaceLabelsPrefix));
      if (!ns) return;
      for (const auto& r : ns->requirements()) reqs.push_back(r);
      // namespaceSelector {} selects every namespace.
      if (ns->IsWildcard()) reqs.push_back(Requirement::Make(nskey, SelectorOp::kExists));
    } else {
      reqs.push_back(Requirement::Make(nskey, SelectorOp::kIn, {ns_}));
    }
    Selector s(std::move(reqs));
    AddClusterFilter(s);
    pr.peers.push_back(std::move(s));
  }

  void NetPolPorts(const YAML::Node& n, std::string_view where, PeerRule& pr) {
    pr.l4_present = true;
    if (!ListOf(n, where) || n.IsNull()) return;
    for (size_t i = 0; i < n.size(); ++i) {
      auto w = meshgate::StrCat(where, "[", i, "]");
      auto p = n[i];
      if (!CheckKeys(p, w, {"port", "endPort", "protocol"})) continue;
      // NetworkPolicyPort.protocol defaults to TCP.
      YAML::Node q = YAML::Clone(p);
      if (!q["protocol"]) q["protocol"] = "TCP";
      YAML::Node seq(YAML::NodeType::Sequence);
      seq.push_back(q);
      // Reuse the Cilium port parser on a one-element list; line numbers are
      // taken from the original node for errors below.
      int before = errors_;
      Ports(seq, w, pr);
      if (errors_ != before) {
        // Re-anchor the last diagnostics to the original line.
        for (auto it = diags_.end() - (errors_ - before); it != diags_.end(); ++it) {
          it->line = LineOf(p);
        }
      }
      if (q["protocol"].Scalar() == "ANY") {
        ErrorAt(LineOf(p), meshgate::StrCat(w, ".protocol: want TCP, UDP or SCTP"));
      }
    }
  }

  std::optional<Rule> NetworkPolicySpec(const YAML::Node& n) {
    int before = errors_;
    CheckKeys(n, "spec", {"podSelector", "policyTypes", "ingress", "egress"});
    Rule r;
    r.line = LineOf(n);
    if (!n.IsMap()) return std::nullopt;
    if (!n["podSelector"]) {
      Error(n, "spec: missing \"podSelector\"");
    } else {
      auto s = LabelSelector(n["podSelector"], "spec.podSelector", "k8s:");
      if (s) r.subject = ScopeSubject(*s);
    }
    bool ingress_type = true, egress_type = bool(n["egress"]);
    if (auto pt = n["policyTypes"]; pt && ListOf(pt, "spec.policyTypes") && !pt.IsNull()) {
      ingress_type = egress_type = false;
      for (size_t i = 0; i < pt.size(); ++i) {
        auto s = pt[i].as<std::string>("");
        if (s == "Ingress") ingress_type = true;
        else if (s == "Egress") egress_type = true;
        else Error(pt[i], meshgate::StrCat("spec.policyTypes[", i, "]: want Ingress or Egress"));
      }
    }
    for (auto dir : {Direction::kIngress, Direction::kEgress}) {
      bool in = dir == Direction::kIngress;
      bool type = in ? ingress_type : egress_type;
      auto& out = in ? r.ingress : r.egress;
      std::string_view sec = in ? "ingress" : "egress";
      std::string_view peers_key = in ? "from" : "to";
      if (!type) continue;
      (in ? r.has_ingress : r.has_egress) = true;
      auto v = n[std::string(sec)];
      if (v && ListOf(v, meshgate::StrCat("spec.", sec)) && !v.IsNull()) {
        for (size_t i = 0; i < v.size(); ++i) {
          auto w = meshgate::StrCat("spec.", sec, "[", i, "]");
          auto e = v[i];
          PeerRule pr;
          pr.line = LineOf(e);
          if (!e.IsNull() && !CheckKeys(e, w, {peers_key, "ports"})) continue;
          auto peers = e.IsNull() ? YAML::Node() : e[std::string(peers_key)];
          pr.l3_present = true;
          if (!peers || peers.IsNull() || (peers.IsSequence() && peers.size() == 0)) {
            // "If this field is empty or missing, this rule matches all sources."
            pr.peers.push_back(Selector());
          } else if (ListOf(peers, meshgate::StrCat(w, ".", peers_key))) {
            for (size_t j = 0; j < peers.size(); ++j) {
              NetPolPeer(peers[j], meshgate::StrCat(w, ".", peers_key, "[", j, "]"), pr);
            }
          }
          if (!e.IsNull() && e["ports"] && !e["ports"].IsNull() && e["ports"].size() > 0) {
            NetPolPorts(e["ports"], meshgate::StrCat(w, ".ports"), pr);
          }
          out.push_back(std::move(pr));
        }
      }
      // A policy type with no rules denies that direction (Cilium turns it
      // into a rule with an empty section: default deny, nothing allowed).
      if (out.empty()) out.push_back(PeerRule{});
    }
    if (errors_ != before) return std::nullopt;
    return r;
  }

 private:
  const ParseContext& ctx_;
  std::vector<Diagnostic>& diags_;
  PolicyKind kind_;
  std::string ns_;
  int errors_ = 0;
};

}  // namespace

std::string Diagnostic::ToString() const {
  if (line > 0) return meshgate::StrCat(file, ":", line, ": ", message);
  return meshgate::StrCat(file, ": ", message);
}

bool IsPolicyKind(std::string_view kind) {
  return kind == "CiliumNetworkPolicy" || kind == "CiliumClusterwideNetworkPolicy" ||
         kind == "NetworkPolicy";
}

bool ParsePolicyDocument(const YAML::Node& doc, const ParseContext& ctx, Policy& out,
                         std::vector<Diagnostic>& diags) {
  size_t first = diags.size();
  auto err = [&](const YAML::Node& n, std::string m) {
    diags.push_back({ctx.file, LineOf(n), std::move(m)});
  };
  std::string kind = doc["kind"].as<std::string>("");
  std::string api = doc["apiVersion"] ? doc["apiVersion"].as<std::string>("") : "";
  out = Policy();
  out.file = ctx.file;
  out.line = LineOf(doc);
  if (kind == "CiliumNetworkPolicy") out.kind = PolicyKind::kCiliumNetworkPolicy;
  else if (kind == "CiliumClusterwideNetworkPolicy")
    out.kind = PolicyKind::kCiliumClusterwideNetworkPolicy;
  else if (kind == "NetworkPolicy") out.kind = PolicyKind::kNetworkPolicy;
  else {
    err(doc, meshgate::StrCat("unknown kind \"", kind, "\""));
    return false;
  }
  std::string want_api = out.kind == PolicyKind::kNetworkPolicy ? "networking.k8s.io/v1"
                                                                 : "cilium.io/v2";
  if (api != want_api) {
    err(doc["apiVersion"] ? doc["apiVersion"] : doc,
        meshgate::StrCat(kind, ": apiVersion must be ", want_api, ", got \"", api, "\""));
  }
  auto md = doc["metadata"];
  if (!md || !md.IsMap() || !md["name"] || !md["name"].IsScalar() ||
      md["name"].Scalar().empty()) {
    err(md ? md : doc, meshgate::StrCat(kind, ": metadata.name is required"));
    return false;
  }
  out.name = md["name"].Scalar();
  bool cluster_scoped = out.kind == PolicyKind::kCiliumClusterwideNetworkPolicy;
  if (!cluster_scoped) {
    out.ns = md["namespace"] && md["namespace"].IsScalar() ? md["namespace"].Scalar()
                                                           : ctx.default_namespace;
  }
  for (auto it : doc) {
    auto k = it.first.as<std::string>("");
    if (k != "apiVersion" && k != "kind" && k != "metadata" && k != "spec" &&
        k != "specs" && k != "status") {
      err(it.first, meshgate::StrCat(kind, ": unknown field \"", k, "\""));
    }
  }
  Parser p(ctx, diags, out.kind, out.ns);
  if (out.kind == PolicyKind::kNetworkPolicy) {
    if (!doc["spec"]) {
      err(doc, "NetworkPolicy: spec is required");
    } else if (doc["specs"]) {
      err(doc["specs"], "NetworkPolicy: unknown field \"specs\"");
    } else if (auto r = p.NetworkPolicySpec(doc["spec"])) {
      out.rules.push_back(std::move(*r));
    }
  } else {
    if (auto s = doc["spec"]; s && !s.IsNull()) {
      if (auto r = p.CiliumRule(s, "spec")) out.rules.push_back(std::move(*r));
    }
    if (auto s = doc["specs"]; s && !s.IsNull()) {
      if (!s.IsSequence()) {
        err(s, "specs: expected a list");
      } else {
        for (size_t i = 0; i < s.size(); ++i) {
          if (auto r = p.CiliumRule(s[i], meshgate::StrCat("specs[", i, "]"))) {
            out.rules.push_back(std::move(*r));
          }
        }
      }
    }
    if ((!doc["spec"] || doc["spec"].IsNull()) && (!doc["specs"] || doc["specs"].IsNull())) {
      err(doc, meshgate::StrCat(kind, ": one of spec or specs is required"));
    }
  }
  for (size_t i = first; i < diags.size(); ++i) {
    diags[i].message = meshgate::StrCat(out.Id(), ": ", diags[i].message);
  }
  return diags.size() == first;
}

}  // namespace meshgate::classifier
