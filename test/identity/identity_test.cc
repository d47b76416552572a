// identity/: labels, selectors, numeric identities, registry, ipcache.
// Pure unit tests, no EAL. Each cites the Cilium source it reproduces.
#include <catch2/catch.hpp>

#include "identity/endpoint.h"
#include "identity/ipcache.h"
#include "identity/labels.h"
#include "identity/numeric.h"
#include "identity/registry.h"
#include "identity/selector.h"

using namespace meshgate::identity;

namespace {
Labels L(const char* text) {
  auto l = Labels::Parse(text);
  REQUIRE(l.ok());
  return *l;
}
IpAddr A(const char* s) { return *IpAddr::Parse(s); }
Prefix P(const char* s) {
  auto p = Prefix::Parse(s);
  REQUIRE(p.ok());
  return *p;
}
}  // namespace

TEST_CASE("labels: source:key=value and the kvstore form",
          "[identity][cilium:pkg/labels/labels.go FormatForKVStore]") {
  auto l = Label::Parse("k8s:app=foo");
  REQUIRE(l.ok());
  CHECK(l->source == "k8s");
  CHECK(l->key == "app");
  CHECK(l->value == "foo");
  CHECK(l->ToString() == "k8s:app=foo");
  CHECK(Label::Parse("reserved:host")->ToString() == "reserved:host");
  CHECK(Label::Parse("app=x")->source == "unspec");
  CHECK(Label::Parse("k8s:url=http://x")->value == "http://x");  // ':' in value
  CHECK_FALSE(Label::Parse("k8s:=x").ok());
  // Sorted by key, always "source:key=value;" (testdata ciliumidentitites.txtar).
  Labels s = L("k8s:io.kubernetes.pod.namespace=bar,k8s:io.cilium.k8s.policy.cluster=cluster3,k8s:app=baz");
  CHECK(s.FormatForKVStore() ==
        "k8s:app=baz;k8s:io.cilium.k8s.policy.cluster=cluster3;k8s:io.kubernetes.pod.namespace=bar;");
  CHECK(L(s.FormatForKVStore().c_str()) == s);  // round trip
  CHECK(IsKnownSource("cidr"));
  CHECK(IsKnownSource("reserved"));
  CHECK_FALSE(IsKnownSource("bogus"));
}

TEST_CASE("cidr labels: IPv6 colons become dashes; prefix round trip",
          "[identity][cilium:pkg/labels/cidr.go GetCIDRLabels]") {
  CHECK(Label::Cidr(P("10.0.0.0/8")).ToString() == "cidr:10.0.0.0/8");
  Label v6 = Label::Cidr(P("2001:db8::/32"));
  CHECK(v6.ToString() == "cidr:2001-db8--/32");
  CHECK(v6.CidrPrefix() == P("2001:db8::/32"));
}

TEST_CASE("addresses and prefixes", "[identity]") {
  CHECK(P("10.1.2.0/24").Contains(A("10.1.2.3")));
  CHECK_FALSE(P("10.1.2.0/24").Contains(A("10.1.3.3")));
  CHECK_FALSE(P("10.1.2.0/24").Contains(A("::1")));
  CHECK(P("10.0.0.0/8").Covers(P("10.1.0.0/16")));
  CHECK_FALSE(P("10.1.0.0/16").Covers(P("10.0.0.0/8")));
  CHECK_FALSE(Prefix::Parse("10.1.2.3/24").ok());  // host bits set
  CHECK_FALSE(Prefix::Parse("10.1.2.0/33").ok());
  CHECK_FALSE(Prefix::Parse("banana").ok());
  CHECK(P("fd00::1").len == 128);
  CHECK(A("fd00::1").ToString() == "fd00::1");
}

TEST_CASE("selector keys: no source means any; k8s: matches only k8s; reserved: only reserved",
          "[identity][cilium:pkg/policy/api/selector.go sanitized; pkg/labels Label.Has]") {
  Labels k8s = L("k8s:app=foo");
  Labels container = L("container:app=foo");
  CHECK(Selector::MatchLabel("app", "foo").Matches(k8s));
  CHECK(Selector::MatchLabel("app", "foo").Matches(container));
  CHECK(Selector::MatchLabel("k8s:app", "foo").Matches(k8s));
  CHECK_FALSE(Selector::MatchLabel("k8s:app", "foo").Matches(container));
  CHECK(Selector::HasLabel("reserved:host").Matches(L("reserved:host")));
  CHECK_FALSE(Selector::HasLabel("reserved:host").Matches(L("k8s:host")));
  // "<prefix>.<string>" stays a key of source any.
  auto r = Requirement::Make("io.kubernetes.pod.namespace", SelectorOp::kExists);
  CHECK(r.source == "any");
  CHECK(r.key == "io.kubernetes.pod.namespace");
  CHECK(Selector().Matches(L("reserved:world")));  // empty matches everything
}

TEST_CASE("selector operators: NotIn and DoesNotExist match a missing key",
          "[identity][k8s LabelSelector; cilium-semantics.md 2.2]") {
  Labels with = L("k8s:env=prod");
  Labels without = L("k8s:app=x");
  auto sel = [](SelectorOp op, std::vector<std::string> v = {}) {
    return Selector({Requirement::Make("env", op, std::move(v))});
  };
  CHECK(sel(SelectorOp::kIn, {"prod", "dev"}).Matches(with));
  CHECK_FALSE(sel(SelectorOp::kIn, {"dev"}).Matches(with));
  CHECK_FALSE(sel(SelectorOp::kIn, {"prod"}).Matches(without));
  CHECK_FALSE(sel(SelectorOp::kNotIn, {"prod"}).Matches(with));
  CHECK(sel(SelectorOp::kNotIn, {"dev"}).Matches(with));
  CHECK(sel(SelectorOp::kNotIn, {"prod"}).Matches(without));
  CHECK(sel(SelectorOp::kExists).Matches(with));
  CHECK_FALSE(sel(SelectorOp::kExists).Matches(without));
  CHECK(sel(SelectorOp::kDoesNotExist).Matches(without));
  CHECK_FALSE(sel(SelectorOp::kDoesNotExist).Matches(with));
  CHECK(ParseSelectorOp("NotIn").ok());
  CHECK_FALSE(ParseSelectorOp("notin").ok());
}

TEST_CASE("cidr selectors match prefix-aware", "[identity][cilium:pkg/labels Label.Has (cidr)]") {
  Labels id32 = L("cidr:10.0.0.1/32,reserved:world");
  CHECK(Selector::HasLabel("cidr:10.0.0.0/24").Matches(id32));
  CHECK_FALSE(Selector::HasLabel("cidr:10.0.1.0/24").Matches(id32));
  CHECK_FALSE(Selector::HasLabel("cidr:10.0.0.0/24").Matches(L("cidr:10.0.0.0/16")));
}

TEST_CASE("selectors compare by canonical form", "[identity]") {
  Selector a({Requirement::Make("b", SelectorOp::kIn, {"2"}),
              Requirement::Make("a", SelectorOp::kIn, {"1"})});
  Selector b({Requirement::Make("a", SelectorOp::kIn, {"1"}),
              Requirement::Make("b", SelectorOp::kIn, {"2"})});
  CHECK(a == b);
  CHECK(a.ToString() == "{any.a=1, any.b=2}");
  CHECK(a.HasKey("a"));
  CHECK_FALSE(a.HasKey("c"));
}

TEST_CASE("numeric identities: reserved ids and cluster ranges (255 and 511 modes)",
          "[identity][cilium:pkg/identity/numericidentity.go; pkg/clustermesh/types/types.go]") {
  CHECK(reserved::kHost == 1);
  CHECK(reserved::kWorld == 2);
  CHECK(reserved::kRemoteNode == 6);
  CHECK(reserved::kKubeApiserver == 7);
  CHECK(reserved::kWorldIpv6 == 10);
  CHECK(ReservedName(8) == "ingress");
  ClusterLayout c255;
  CHECK(c255.shift() == 16);
  CHECK(c255.MinId(1) == 65536);
  CHECK(c255.MaxId(1) == 131071);
  CHECK(c255.MinId(0) == 256);
  CHECK(c255.MaxId(0) == 65535);
  CHECK(c255.ClusterOf(199472) == 3);  // testdata: 199472 = 3*65536 + 2864
  CHECK(c255.MaxId(255) == 0xFFFFFF);
  ClusterLayout c511{511};
  CHECK(c511.Valid());
  CHECK(c511.shift() == 15);
  CHECK(c511.MinId(1) == 32768);
  CHECK(c511.MaxId(1) == 65535);
  CHECK(c511.ClusterOf(c511.MinId(300)) == 300);
  CHECK_FALSE(ClusterLayout{300}.Valid());
  // Remote ipcache entries: sender's range or reserved (pkg/ipcache/kvstore.go).
  CHECK(c255.AcceptFromCluster(2 << 16 | 5, 2));
  CHECK_FALSE(c255.AcceptFromCluster(3 << 16 | 5, 2));
  CHECK(c255.AcceptFromCluster(reserved::kWorld, 2));
  CHECK(IsLocalScope(kScopeLocal | 7));
}

TEST_CASE("registry: same labels in the same cluster -> same id; per-cluster ranges",
          "[identity][cilium:pkg/identity/key/global_identity.go]") {
  Registry r;
  Labels a = L("k8s:app=a");
  auto id1 = r.Allocate(1, a);
  auto id2 = r.Allocate(1, a);
  auto id3 = r.Allocate(2, a);
  REQUIRE(id1.ok());
  CHECK(*id1 == *id2);
  CHECK(*id1 == 65536);
  CHECK(*id3 == 2 * 65536);
  CHECK(*r.Allocate(1, L("k8s:app=b")) == 65537);
  CHECK(r.Find(reserved::kHost)->ToString() == "reserved:host");
  CHECK(r.Find(reserved::kKubeApiserver)->Find("remote-node") != nullptr);
  CHECK_FALSE(r.Allocate(256, a).ok());
  // Learnt identities; relabelling a reserved one is refused.
  CHECK(r.Upsert(3 << 16 | 9, L("k8s:app=z")).ok());
  CHECK(r.Lookup(3, L("k8s:app=z")) == (3u << 16 | 9));
  CHECK_FALSE(r.Upsert(reserved::kWorld, L("k8s:app=evil")).ok());
  CHECK_FALSE(r.Upsert(3 << 16 | 10, L("k8s:app=z")).ok());  // same labels, other id
  CHECK(r.Remove(3 << 16 | 9).ok());
  CHECK_FALSE(r.Remove(reserved::kHost).ok());
  auto local = r.AllocateLocal(L("cidr:10.0.0.0/8"));
  REQUIRE(local.ok());
  CHECK(IsLocalScope(*local));
}

TEST_CASE("registry: an exhausted cluster range is an error, not a wrap",
          "[identity]") {
  Registry r{ClusterLayout{511}};
  uint32_t n = r.layout().MaxId(5) - r.layout().MinId(5) + 1;
  for (uint32_t i = 0; i < n; ++i) {
    REQUIRE(r.Allocate(5, L(("k8s:i=" + std::to_string(i)).c_str())).ok());
  }
  auto st = r.Allocate(5, L("k8s:i=overflow"));
  CHECK(st.status().code() == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("endpoint identity labels: special labels added, impersonations stripped",
          "[identity][cilium:pkg/k8s/apis/cilium.io/const.go; StripPodSpecialLabels]") {
  EndpointSpec ep;
  ep.ns = "prod";
  ep.cluster = "cluster1";
  ep.service_account = "api";
  ep.labels = {{"app", "x"}, {"io.kubernetes.pod.namespace", "kube-system"},
               {"io.cilium.k8s.policy.cluster", "evil"}};
  ep.namespace_labels = {{"team", "a"}};
  Labels l = IdentityLabels(ep);
  CHECK(l.Find("app")->ToString() == "k8s:app=x");
  CHECK(l.Find("io.kubernetes.pod.namespace")->value == "prod");
  CHECK(l.Find("io.cilium.k8s.policy.cluster")->value == "cluster1");
  CHECK(l.Find("io.cilium.k8s.policy.serviceaccount")->value == "api");
  CHECK(l.Find("io.cilium.k8s.namespace.labels.team")->value == "a");
  CHECK(l.Find("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name")->value == "prod");
}

TEST_CASE("ipcache: longest prefix wins; unknown is world (world-ipv4/6 in dual stack)",
          "[identity][cilium:pkg/ipcache; bpf resolve_srcid_ipv4]") {
  IpCache c;
  c.Upsert(P("10.0.0.0/8"), {100});
  c.Upsert(P("10.1.0.0/16"), {200});
  c.Upsert(Prefix::Host(A("10.1.2.3")), {300, A("192.168.0.2")});
  CHECK(c.Lookup(A("10.1.2.3")).id == 300);
  CHECK(c.Lookup(A("10.1.2.3")).entry->tunnel_endpoint == A("192.168.0.2"));
  CHECK(c.Lookup(A("10.1.9.9")).id == 200);
  CHECK(c.Lookup(A("10.9.9.9")).id == 100);
  CHECK(c.Lookup(A("11.0.0.1")).id == reserved::kWorld);
  CHECK(c.Lookup(A("::1")).id == reserved::kWorld);
  CHECK(c.Remove(P("10.1.0.0/16")));
  CHECK(c.Lookup(A("10.1.9.9")).id == 100);
  IpCache dual(true);
  CHECK(dual.Lookup(A("11.0.0.1")).id == reserved::kWorldIpv4);
  CHECK(dual.Lookup(A("2001:db8::1")).id == reserved::kWorldIpv6);
}

TEST_CASE("ipcache: CIDR identities carry every covering policy prefix plus world",
          "[identity][cilium:pkg/labels GetCIDRLabels; Documentation/security/policy/layer3.rst]") {
  Registry r;
  IpCache c;
  auto pod = r.Allocate(1, L("k8s:app=pod"));
  c.Upsert(Prefix::Host(A("10.0.0.5")), {*pod});
  REQUIRE(c.SyncCidrIdentities({P("10.0.0.0/8"), P("10.96.0.0/12"), P("192.0.2.0/24")}, r).ok());
  auto inner = c.Lookup(A("10.96.1.1"));
  const Labels* l = r.Find(inner.id);
  REQUIRE(l != nullptr);
  CHECK(l->Find("10.0.0.0/8") != nullptr);
  CHECK(l->Find("10.96.0.0/12") != nullptr);
  CHECK(l->Find("192.0.2.0/24") == nullptr);
  CHECK(l->Find("world")->source == "reserved");
  CHECK(IsLocalScope(inner.id));
  CHECK(c.Lookup(A("10.0.0.5")).id == *pod);  // the endpoint's own entry wins
  // Re-sync without 10.96/12: its entry and identity go away.
  REQUIRE(c.SyncCidrIdentities({P("10.0.0.0/8")}, r).ok());
  CHECK(r.Find(inner.id) == nullptr);
  CHECK(c.Lookup(A("10.96.1.1")).id == c.Lookup(A("10.1.1.1")).id);
}
