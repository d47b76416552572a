// Conntrack: replies of allowed connections bypass policy; forward packets
// are checked every time (Cilium bpf_lxc.c: only CT_REPLY/CT_RELATED skip a
// deny; PR #2700, #3605); TCP timeouts by state; a full table is a counted
// drop; expired entries are collected off the hot path.
#include <catch2/catch.hpp>

#include <set>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "dataplane/conntrack.h"
#include "dataplane/hash_sweep.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {

const char* kClientLockdown = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-no-ingress}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{}]
)";

Bytes Reply(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
            uint8_t flags = 0x12) {
  return Eth(0x0800, Ipv4(V4(src.c_str()), V4(dst.c_str()), 6, Tcp(sport, dport, flags)));
}

// A bare table for the tests that drive it directly (no pipeline).
struct Table {
  std::unique_ptr<RcuCell<Snapshot>> cell;
  std::unique_ptr<Conntrack> ct;
  const uint64_t hz = rte_get_tsc_hz(), t0 = 1000 * hz;  // a clock far from 0
  explicit Table(uint32_t capacity) {
    cell = std::move(*RcuCell<Snapshot>::Create(1));
    auto c = Conntrack::Create(capacity, cell->qsbr());
    REQUIRE(c.ok());
    ct = std::move(*c);
  }
};

// A TCP or UDP tuple of random addresses and ports (IPv4's unused address
// bytes 0, as the pipeline writes them).
CtKey RandomTuple(std::mt19937& rng, uint8_t family) {
  CtKey k;
  k.family = family;
  k.proto = rng() % 2 ? 6 : 17;
  k.sport = uint16_t(rng());
  k.dport = uint16_t(rng());
  for (int b = 0; b < (family == 4 ? 4 : 16); ++b) {
    k.src[b] = uint8_t(rng());
    k.dst[b] = uint8_t(rng());
  }
  return k;
}

// 10.0.0.0:sport -> 11.0.0.0:dport.
CtKey Tuple(uint8_t proto, uint16_t sport, uint16_t dport) {
  CtKey k;
  k.family = 4;
  k.proto = proto;
  k.sport = sport;
  k.dport = dport;
  k.src[0] = 10;
  k.dst[0] = 11;
  return k;
}

// test may send to myapp (egress); nothing else is said about either.
const char* kTestToMyapp = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: test-egress}
spec:
  endpointSelector: {matchLabels: {app: test}}
  egress: [{toEndpoints: [{matchLabels: {app: myapp}}]}]
)";

struct CtNode {
  Node n;
  std::unique_ptr<RcuCell<Snapshot>> cell;
  std::unique_ptr<Conntrack> ct;
  std::unique_ptr<Snapshot> snap;
  explicit CtNode(uint32_t capacity = 1024, uint32_t readers = 2) {
    cell = std::move(*RcuCell<Snapshot>::Create(readers));
    if (capacity) ct = std::move(*Conntrack::Create(capacity, cell->qsbr()));
  }
  void Rebuild() { snap = n.Build(); }
};

// A node under `policy` (none: nullptr) with conntrack and a pipeline,
// and bursts from test's port.
struct TestBursts {
  CtNode c;
  std::unique_ptr<Pipeline> pl;
  Run r{{}, nullptr};
  uint16_t te = 0, my = 0;
  explicit TestBursts(const char* policy = kTestToMyapp) {
    if (policy != nullptr) c.n.w.Apply(policy);
    c.Rebuild();
    pl = std::make_unique<Pipeline>(*c.cell, 0, c.ct.get());
    r.pl = pl.get();
    te = c.n.port["test"];
    my = c.n.port["myapp"];
  }
  // One burst of `frames` from test's port, the i-th mbuf's RX flags
  // or'ed with `ol_flags[i]` where given. Each mbuf's metadata is filled
  // with kPoison first: MetaWritten tells whether the pipeline wrote it.
  static constexpr uint8_t kPoison = 0xa5;
  void Burst(const std::vector<Bytes>& frames, const std::vector<uint64_t>& ol_flags = {}) {
    std::vector<rte_mbuf*> pkts;
    for (size_t i = 0; i < frames.size(); ++i) {
      pkts.push_back(ToMbuf(Pool(), frames[i]));
      REQUIRE(pkts.back() != nullptr);
      std::memset(static_cast<void*>(Meta(pkts.back())), kPoison, sizeof(PacketMeta));
      if (i < ol_flags.size()) pkts.back()->ol_flags |= ol_flags[i];
    }
    pl->Process(*c.snap, pkts.data(), uint16_t(pkts.size()), te, r.out);
  }
  // Whether any byte of m's metadata is not kPoison (PlainMeta writes
  // zeros among its fields, so a written record never is all poison).
  static bool MetaWritten(const rte_mbuf* m) {
    const auto* p = reinterpret_cast<const uint8_t*>(Meta(const_cast<rte_mbuf*>(m)));
    for (size_t i = 0; i < sizeof(PacketMeta); ++i) {
      if (p[i] != kPoison) return true;
    }
    return false;
  }
};

// ForwardCandidate as a position, -1 for no; a yes must carry the
// record's cached verdict.
int32_t ForwardPos(const Conntrack& t, uint32_t first, const CtKey& k, uint64_t now) {
  int32_t pos = -1;
  CtVerdict v;
  if (!t.ForwardCandidate(first, k, now, &pos, &v)) return -1;
  const CtVerdict want = t.Verdict(pos);
  CHECK(std::memcmp(&v, &want, sizeof v) == 0);
  return pos;
}

}  // namespace

TEST_CASE("replies bypass policy; without conntrack they would be dropped",
          "[conntrack][cilium:bpf/bpf_lxc.c CT_REPLY]") {
  for (bool with_ct : {false, true}) {
    INFO("conntrack " << with_ct);
    CtNode c(with_ct ? 1024 : 0);
    c.n.w.Apply(kClientLockdown);  // frontend takes no ingress at all
    c.Rebuild();
    Pipeline pl(*c.cell, 0, c.ct.get());
    Run r{{}, &pl};
    uint16_t fe = c.n.port["frontend"], my = c.n.port["myapp"];
    r.Send(*c.snap, fe, TcpFrame("10.1.0.10", "10.1.0.20", 80));        // SYN
    auto got = r.Take(my);
    REQUIRE(got.size() == 1);
    rte_pktmbuf_free(got[0]);
    r.Send(*c.snap, my, Reply("10.1.0.20", "10.1.0.10", 80, 40000));    // SYN-ACK
    got = r.Take(fe);
    CHECK(got.size() == (with_ct ? 1u : 0u));
    if (with_ct) {
      CHECK((Meta(got[0])->flags & kPktReply));
      CHECK(pl.counters().ct_replies == 1);
    } else {
      CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);
    }
    for (auto* m : got) rte_pktmbuf_free(m);
    // A new connection *to* frontend is still denied either way.
    r.Send(*c.snap, my, TcpFrame("10.1.0.20", "10.1.0.10", 8080));
    CHECK(r.Take(fe).empty());
  }
}

TEST_CASE("a policy tightened under an established flow cuts its forward packets, not replies",
          "[conntrack][cilium:PR 2700 policy consulted for every packet]") {
  TestBursts b(nullptr);
  CtNode& c = b.c;
  Pipeline& pl = *b.pl;
  Run& r = b.r;
  const uint16_t te = b.te, my = b.my;
  r.Send(*c.snap, te, TcpFrame("10.1.0.11", "10.1.0.20", 80));
  r.Send(*c.snap, my, Reply("10.1.0.20", "10.1.0.11", 80, 40000));
  for (auto* m : r.Take(my)) rte_pktmbuf_free(m);
  for (auto* m : r.Take(te)) rte_pktmbuf_free(m);
  CHECK(pl.counters().ct_new == 1);
  // Now only frontends may reach myapp.
  c.n.w.Apply(kMyappFromFrontend);
  c.Rebuild();
  r.Send(*c.snap, te, Eth(0x0800, Ipv4(V4("10.1.0.11"), V4("10.1.0.20"), 6, Tcp(40000, 80, 0x10))));
  CHECK(r.Take(my).empty());
  CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);
  r.Send(*c.snap, my, Reply("10.1.0.20", "10.1.0.11", 80, 40000, 0x10));
  auto got = r.Take(te);
  CHECK(got.size() == 1);  // the reply still passes: the entry was not deleted
  for (auto* m : got) rte_pktmbuf_free(m);
}

TEST_CASE("the TTL's checksum update is valid for every checksum a header can carry",
          "[conntrack][verdict-cache]") {
  // The IP id takes every value, so the header checksum does too (the
  // wrap of the RFC 1624 update included); the connection's first packet
  // takes the general stages, the rest the one pass over its cached verdict.
  TestBursts b(nullptr);
  Pipeline& pl = *b.pl;
  Run& r = b.r;
  auto& n = b.c.n;
  const auto& snap = b.c.snap;
  Bytes f = TcpFrame("10.1.0.10", "10.1.0.20", 80, 200);
  uint32_t bad = 0, sent = 0, zeros = 0;
  for (uint32_t id = 0; id <= 0xffff; ++id) {
    f[14 + 4] = uint8_t(id >> 8);
    f[14 + 5] = uint8_t(id);
    f[14 + 8] = uint8_t(2 + id % 250);  // the TTL too
    RefreshIpv4Checksum(f, 14);
    r.Send(*snap, n.port["frontend"], f);
    ++sent;
    if (f[14 + 10] == 0 && f[14 + 11] == 0) {  // its other zero, 0xffff, valid too (RFC 1624 3)
      f[14 + 10] = f[14 + 11] = 0xff;
      r.Send(*snap, n.port["frontend"], f);
      ++sent;
      ++zeros;
    }
    for (rte_mbuf* m : r.Take(n.port["myapp"])) {
      auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
      bad += rte_raw_cksum(ip, 20) != 0xffff || ip->time_to_live != uint8_t(1 + id % 250);
      rte_pktmbuf_free(m);
    }
  }
  CHECK(bad == 0);
  CHECK(zeros > 0);
  CHECK(pl.counters().forwarded == sent);
#if defined(__AVX__)
  CHECK(pl.counters().verdicts_cached == sent - 1);
#endif
}

TEST_CASE("the verdict cache: established packets reuse it until the ipcache, a class or the policy changes",
          "[conntrack][verdict-cache][cilium:PR 2700 policy consulted for every packet]") {
  // Cilium looks the policy up for every forward packet; a cached verdict
  // must therefore give the same answer the lookup would, whatever changed.
  CtNode c;
  c.n.w.Apply(kTestToMyapp);
  c.Rebuild();
  Pipeline pl(*c.cell, 0, c.ct.get());
  Run r{{}, &pl};
  uint16_t te = c.n.port["test"], my = c.n.port["myapp"];
  auto ack = [] { return Eth(0x0800, Ipv4(V4("10.1.0.11"), V4("10.1.0.20"), 6, Tcp(40000, 80, 0x10))); };
  auto forwarded = [&] {
    auto got = r.Take(my);
    for (auto* m : got) rte_pktmbuf_free(m);
    return got.size();
  };
  r.Send(*c.snap, te, TcpFrame("10.1.0.11", "10.1.0.20", 80));  // new: classified, cached
  REQUIRE(forwarded() == 1);
  CHECK(pl.counters().verdicts_cached == 0);
  r.Send(*c.snap, te, ack());
  CHECK(forwarded() == 1);
#if defined(__AVX__)
  CHECK(pl.counters().verdicts_cached == 1);  // the second packet took the cached verdict
#else
  CHECK(pl.counters().verdicts_cached == 0);  // no 16-byte atomic access: cache off
#endif

  SECTION("the destination's ipcache identity changes (no new snapshot): classified again") {
    auto st = c.n.table->Upsert(identity::Prefix::Host(*identity::IpAddr::Parse("10.1.0.20")),
                                Route{identity::reserved::kWorld, my, Route::kLocal, 0});
    REQUIRE(st.ok());
    r.Send(*c.snap, te, ack());
    CHECK(forwarded() == 0);  // egress to world is not allowed
    CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);
  }
  SECTION("the destination identity's class changes in place: classified again") {
    uint32_t epoch = c.snap->classes->epoch();
    REQUIRE(c.snap->classes->Set(c.n.w.Get("myapp").id, 0).ok());
    CHECK(c.snap->classes->epoch() != epoch);
    r.Send(*c.snap, te, ack());
    CHECK(forwarded() == 0);
    CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);
  }
  SECTION("a new snapshot that still allows: classified again, then cached again") {
    c.Rebuild();
    uint64_t cached = pl.counters().verdicts_cached;
    r.Send(*c.snap, te, ack());
    CHECK(forwarded() == 1);
    CHECK(pl.counters().verdicts_cached == cached);
    r.Send(*c.snap, te, ack());
    CHECK(forwarded() == 1);
#if defined(__AVX__)
    CHECK(pl.counters().verdicts_cached == cached + 1);
#endif
  }
  SECTION("the endpoints listed anew (same ports, same ipcache): routed from the new list") {
    // The verdict caches the local endpoint's index in the snapshot's
    // list; a new snapshot (a new class epoch) must not reuse it.
    const uint32_t version = c.n.table->version();
    auto reordered = c.n.Build(0, true);
    REQUIRE(c.n.table->version() == version);  // only the snapshot changed
    REQUIRE(reordered->endpoint_of_port[my] != c.snap->endpoint_of_port[my]);
    c.snap = std::move(reordered);
    const uint64_t cached = pl.counters().verdicts_cached;
    for (int i = 0; i < 2; ++i) {  // classified again and cached, then from the cache
      r.Send(*c.snap, te, ack());
      CHECK(forwarded() == 1);  // still myapp's port
      for (uint16_t p = 0; p < kMaxPorts; ++p) CHECK(r.out.n[p] == 0);
    }
#if defined(__AVX__)
    CHECK(pl.counters().verdicts_cached == cached + 1);
#endif
  }
  SECTION("nothing changed: the cached verdict stands for every later packet") {
    for (int i = 0; i < 5; ++i) r.Send(*c.snap, te, ack());
    CHECK(forwarded() == 5);
    CHECK(pl.dropped(DropReason::kPolicyDenied) == 0);
  }
}

TEST_CASE("bursts: cached verdicts in one pass when all stand, in arrival order when mixed",
          "[conntrack][verdict-cache][burst]") {
  // The leading packets of a burst whose cached verdicts stand (all of
  // them in the steady state) skip the policy stages; from the first other
  // packet on, the rest of the burst goes through them. Either way the
  // packets leave in the order they came, and a cached packet meets the
  // same checks after its verdict (TTL here).
  TestBursts b;
  Pipeline& pl = *b.pl;
  Run& r = b.r;
  const uint16_t my = b.my;
  auto frame = [](uint16_t sport, uint8_t flags, uint8_t ttl = 64) {
    return Eth(0x0800, Ipv4(V4("10.1.0.11"), V4("10.1.0.20"), 6, Tcp(sport, 80, flags), {}, 0, ttl));
  };
  auto burst = [&](const std::vector<Bytes>& frames) { b.Burst(frames); };
  // The source ports of what myapp's port got, in order; each checked.
  // (The verdict in a packet's metadata: where it was written, forwarded;
  // a leading frame the one pass delivers has none written, the next test.)
  auto sent = [&] {
    std::vector<uint16_t> ports;
    for (rte_mbuf* m : r.Take(my)) {
      const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
      ports.push_back(uint16_t(d[34] << 8 | d[35]));
      CHECK(d[22] == 63);  // TTL decremented
      CHECK(std::memcmp(d, Mac(uint8_t(my + 1)).addr_bytes, 6) == 0);
      CHECK(std::memcmp(d + 6, kRouter.addr_bytes, 6) == 0);
      if (TestBursts::MetaWritten(m)) {
        CHECK(Meta(m)->verdict == uint8_t(classifier::Verdict::kForwarded));
      }
      rte_pktmbuf_free(m);
    }
    return ports;
  };
  burst({frame(1, 0x02), frame(2, 0x02), frame(3, 0x02)});  // three new connections
  REQUIRE(sent() == std::vector<uint16_t>{1, 2, 3});
  CHECK(pl.counters().ct_new == 3);
  CHECK(pl.counters().verdicts_cached == 0);

  burst({frame(3, 0x10), frame(1, 0x10), frame(2, 0x10)});  // all established: one pass
  CHECK(sent() == std::vector<uint16_t>{3, 1, 2});
#if defined(__AVX__)
  CHECK(pl.counters().verdicts_cached == 3);
#endif

  burst({frame(2, 0x10), frame(4, 0x02), frame(1, 0x10)});  // one new among them
  CHECK(sent() == std::vector<uint16_t>{2, 4, 1});
  CHECK(pl.counters().ct_new == 4);
#if defined(__AVX__)
  CHECK(pl.counters().verdicts_cached == 5);
#endif

  // One flow on both sides of the break: its first packet in the one
  // pass, its second after the new connection, the general way.
  burst({frame(1, 0x10), frame(5, 0x02), frame(1, 0x10), frame(3, 0x10)});
  CHECK(sent() == std::vector<uint16_t>{1, 5, 1, 3});
  CHECK(pl.counters().ct_new == 5);
#if defined(__AVX__)
  CHECK(pl.counters().verdicts_cached == 8);
#endif

  burst({frame(1, 0x10, 1), frame(4, 0x10)});  // a cached verdict, then TTL 1
  CHECK(sent() == std::vector<uint16_t>{4});
  CHECK(pl.dropped(DropReason::kTtlExceeded) == 1);
  CHECK(pl.counters().forwarded == 14);
}

TEST_CASE("an endpoint's burst: its leading usual frames on their own loop, the rest after, in order",
          "[conntrack][burst][offload]") {
  // Pipeline::LeadingPlain4 takes an endpoint's leading usual IPv4 frames
  // (PlainEndpoint) and stops at the first other one (a tag, IP options, a
  // bad checksum); the general loop takes the rest, usual frames too.
  // Either way each packet leaves in order, and the port's IPv4 checksum
  // verdict is taken only when the port gives one. A leading frame's
  // metadata is written only when the one pass does not deliver it (new,
  // another route, a drop), and then as the general parse writes it.
  TestBursts b;
  Pipeline& pl = *b.pl;
  const uint16_t te = b.te;
  const uint32_t test_id = b.c.n.w.Get("test").id;
  struct In {
    Bytes frame;
    uint64_t ck = 0;  // RTE_MBUF_F_RX_IP_CKSUM_*
  };
  auto usual = [](uint16_t sport, uint8_t flags) {
    return Eth(0x0800, Ipv4(V4("10.1.0.11"), V4("10.1.0.20"), 6, Tcp(sport, 80, flags)));
  };
  auto bad_ck = [](Bytes f) {
    f[24] ^= 0x5a;  // the IPv4 header checksum
    return f;
  };
  // Sends one burst; returns the source ports myapp's port got, in order,
  // each one's metadata checked where it was written (`written`, in order).
  std::vector<bool> written;
  auto burst = [&](const std::vector<In>& in) {
    written.clear();
    std::vector<Bytes> frames;
    std::vector<uint64_t> ck;
    for (const In& i : in) {
      frames.push_back(i.frame);
      ck.push_back(i.ck);
    }
    b.Burst(frames, ck);
    std::vector<uint16_t> ports;
    for (rte_mbuf* m : b.r.Take(b.my)) {
      const PacketMeta& meta = *Meta(m);
      const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
      const uint16_t l3 = d[12] == 0x81 ? 18 : 14;  // an 802.1Q tag kept
      ports.push_back(uint16_t(d[l3 + (d[l3] & 0xf) * 4] << 8 | d[l3 + (d[l3] & 0xf) * 4 + 1]));
      written.push_back(TestBursts::MetaWritten(m));
      if (!written.back()) {
        rte_pktmbuf_free(m);
        continue;
      }
      CHECK(meta.l3_off == l3);
      CHECK(meta.l4_off == l3 + uint16_t((d[l3] & 0xf) * 4));
      CHECK(meta.sport == uint16_t(d[meta.l4_off] << 8 | d[meta.l4_off + 1]));
      CHECK(meta.dport == 80);
      CHECK(meta.family == 4);
      CHECK(meta.proto == 6);
      CHECK(meta.tcp_flags == d[meta.l4_off + 13]);
      CHECK(meta.in_port == te);
      // A new connection's decision names its direction (egress allowed,
      // then ingress at myapp decided); a cached verdict leaves the
      // parse's unknown.
      CHECK(meta.reason_dir == uint8_t(meta.tcp_flags == 0x02 ? TrafficDirection::kIngress
                                                               : TrafficDirection::kUnknown));
      CHECK(meta.drop == DropReason::kNone);
      CHECK(meta.src_identity == test_id);
      CHECK(meta.verdict == uint8_t(classifier::Verdict::kForwarded));
      rte_pktmbuf_free(m);
    }
    return ports;
  };
  // New connections: usual, tagged (general parse), usual, IP options
  // (general), usual.
  CHECK(burst({{usual(1, 0x02)}, {WithVlanTag(usual(2, 0x02))}, {usual(3, 0x02)},
               {Eth(0x0800, Ipv4(V4("10.1.0.11"), V4("10.1.0.20"), 6, Tcp(4, 80, 0x02),
                                 Bytes{1, 1, 1, 1}))},
               {usual(5, 0x02)}}) == std::vector<uint16_t>{1, 2, 3, 4, 5});
  CHECK(pl.counters().ct_new == 5);
  CHECK(written == std::vector<bool>{true, true, true, true, true});
  // Established, the same shapes: the two leading frames are delivered by
  // the one pass, their metadata unwritten; the tagged frame and the usual
  // one after it go the general way.
  CHECK(burst({{usual(1, 0x10)}, {usual(3, 0x10)}, {WithVlanTag(usual(2, 0x10))},
               {usual(5, 0x10)}}) == std::vector<uint16_t>{1, 3, 2, 5});
  CHECK(written == std::vector<bool>{false, false, true, true});
  // A leading frame the one pass cannot take (a new connection second)
  // stops it: that frame and the leading one after it get theirs.
  CHECK(burst({{usual(1, 0x10)}, {usual(6, 0x02)}, {usual(3, 0x10)}}) ==
        std::vector<uint16_t>{1, 6, 3});
  CHECK(written == std::vector<bool>{false, true, true});
  CHECK(pl.counters().ct_new == 6);
  auto invalid = [&] { return pl.counters().drops[te].by_reason[134]; };
  SECTION("a port without a checksum verdict: every header summed in software") {
    CHECK(burst({{usual(1, 0x10), RTE_MBUF_F_RX_IP_CKSUM_BAD},
                 {bad_ck(usual(3, 0x10)), RTE_MBUF_F_RX_IP_CKSUM_GOOD},
                 {usual(5, 0x10)},
                 {bad_ck(usual(1, 0x10))}}) == std::vector<uint16_t>{1, 5});
    CHECK(invalid() == 2);
  }
  SECTION("a port that gives one: GOOD and BAD taken, UNKNOWN and NONE summed") {
    pl.SetPortOffloads(te, kRxIpv4Cksum);
    CHECK(burst({{bad_ck(usual(1, 0x10)), RTE_MBUF_F_RX_IP_CKSUM_GOOD},
                 {usual(3, 0x10), RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN},
                 {usual(5, 0x10), RTE_MBUF_F_RX_IP_CKSUM_BAD},
                 {bad_ck(usual(1, 0x10)), RTE_MBUF_F_RX_IP_CKSUM_GOOD},
                 {bad_ck(usual(3, 0x10)), RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN},
                 {bad_ck(usual(5, 0x10)), RTE_MBUF_F_RX_IP_CKSUM_NONE},
                 {usual(5, 0x10), RTE_MBUF_F_RX_IP_CKSUM_NONE}}) ==
          std::vector<uint16_t>{1, 3, 1, 5});
    CHECK(invalid() == 3);
  }
  CHECK(rte_mempool_avail_count(Pool()) == 1023);  // nothing leaked
}

TEST_CASE("a burst's verdict test answers as CtVerdict::Stands, wide identities included",
          "[conntrack][verdict-cache]") {
  constexpr uint32_t kId = 1234, kMask = CtVerdict::kIdentityMask;
  const uint64_t stamp = CtVerdict::Stamp(7, 9);
  // Records as VerdictToCache writes them (identity masked), and others.
  std::vector<CtVerdict> records;
  for (uint32_t epoch : {7u, 8u, 0u})
    for (uint32_t ipcache : {9u, 10u})
      for (uint32_t id : {kId, kId + 1, 0u, kMask, kId | 1u << 24})
        for (uint32_t flags : {0u, CtVerdict::kEgress, CtVerdict::kAudit,
                               CtVerdict::kEgress | CtVerdict::kAudit}) {
          for (uint32_t local : {0u, CtVerdict::Local(5)}) {
            records.push_back(CtVerdict{epoch, ipcache, 3, id | flags | local});
          }
        }
  // Packet identities, among them ones with the flag bits' positions set.
  const uint32_t ids[] = {kId,
                          kId + 1,
                          0,
                          kMask,
                          kId | 1u << 24,
                          kId | 1u << 25,
                          kId | CtVerdict::kEgress,
                          kId | CtVerdict::kAudit,
                          kId | 1u << 31,
                          0xffffffffu};
  uint32_t stood = 0;
  for (bool egress : {false, true}) {
    const VerdictTest test(stamp, egress);
    for (const CtVerdict& v : records) {
      for (uint32_t id : ids) {
        const bool want = CtVerdict::Stands(v, stamp, id, egress);
        INFO("epoch " << v.epoch << " ipcache " << v.ipcache << " bits " << v.bits << " id " << id
                      << " egress " << egress);
        CHECK(test(v, id) == want);
        // The comparand built once for an endpoint's identity (LeadLocal;
        // a wider identity is refused before it is built).
        if (id <= kMask) CHECK(test.For(id)(v) == want);
        stood += want;
      }
    }
  }
  // What Stands itself says: the same stamp, identity and egress check
  // stand, the audit bit aside; nothing wider than the mask ever does.
  CHECK(CtVerdict::Stands(CtVerdict{7, 9, 3, kId | CtVerdict::kEgress | CtVerdict::kAudit}, stamp,
                          kId, true));
  CHECK_FALSE(CtVerdict::Stands(CtVerdict{7, 9, 3, kId | CtVerdict::kEgress}, stamp,
                                kId | CtVerdict::kEgress, false));
  CHECK_FALSE(CtVerdict::Stands(CtVerdict{7, 9, 3, kId}, stamp, kId, true));
  CHECK_FALSE(CtVerdict::Stands(CtVerdict{7, 10, 3, kId}, stamp, kId, false));
  // Each of the 5 identities under the stamp, egress or not, audit or not,
  // a local endpoint or not.
  CHECK(stood == 2 * 5 * 2 * 2);
  // The local endpoint's index + 1 in its bits, for the first 31.
  CHECK(CtVerdict{0, 0, 0, CtVerdict::Local(0)}.local() == 1);
  CHECK(CtVerdict{0, 0, 0, CtVerdict::Local(30) | kMask | CtVerdict::kEgress}.local() == 31);
  CHECK(CtVerdict::Local(31) == 0);
  CHECK(CtVerdict::Local(kNoEndpoint) == 0);
  CHECK((CtVerdict::Local(30) & (kMask | CtVerdict::kEgress | CtVerdict::kAudit)) == 0);
}

TEST_CASE("a cached verdict reads back whole; a new connection caches nothing by itself",
          "[conntrack][verdict-cache]") {
  CtVerdict v{7, 9, 3, 1234 | CtVerdict::kEgress};
  CtNode c;
  Pipeline pl(*c.cell, 0, c.ct.get());
  CtKey k;
  k.family = 4;
  k.proto = 17;
  k.sport = 1;
  k.dport = 2;
  int32_t pos = -1;
  REQUIRE(c.ct->Create(k, 0, rte_rdtsc(), &pos));
  CHECK(c.ct->Verdict(pos).epoch == 0);  // a new connection caches nothing by itself
  c.ct->CacheVerdict(pos, v);
#if defined(__AVX__)
  CtVerdict got = c.ct->Verdict(pos);
  CHECK(got.epoch == 7);
  CHECK(got.ipcache == 9);
  CHECK(got.nh == 3);
  CHECK((got.bits & CtVerdict::kIdentityMask) == 1234);
#endif
}

namespace {

// A TCP segment to port `dport` split in two IPv4 fragments: the first
// carries the TCP header (MF set), the second 8 bytes further on.
std::pair<Bytes, Bytes> Fragments4(const char* src, const char* dst, uint16_t dport) {
  Bytes seg = Tcp(40000, dport, 0x02);
  seg.resize(48, 0x5a);  // 20-byte header + 28 bytes of payload
  Bytes first(seg.begin(), seg.begin() + 24), rest(seg.begin() + 24, seg.end());
  return {Eth(0x0800, Ipv4(V4(src), V4(dst), 6, first, {}, 0x2000)),   // MF, offset 0
          Eth(0x0800, Ipv4(V4(src), V4(dst), 6, rest, {}, 24 / 8))};   // offset 3 (24 bytes)
}

std::pair<Bytes, Bytes> Fragments6(const char* src, const char* dst, uint16_t dport) {
  Bytes seg = Udp(40000, dport, 40);
  Bytes first(seg.begin(), seg.begin() + 24), rest(seg.begin() + 24, seg.end());
  return {Eth(0x86DD, Ipv6(src, dst, 44, Cat(FragHdr(17, 0, true), first))),
          Eth(0x86DD, Ipv6(src, dst, 44, Cat(FragHdr(17, 3, false), rest)))};
}

}  // namespace

// myapp takes port 80 only (any protocol); frontend sends fragments to it.
struct FragRig {
  CtNode c;
  std::unique_ptr<Pipeline> pl;
  Run r;
  uint16_t fe = 0, my = 0;
  explicit FragRig(std::map<std::string, std::string> ips = {}) {
    if (!ips.empty()) c.n.ip = std::move(ips);
    c.n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{toPorts: [{ports: [{port: "80", protocol: ANY}]}]}]
)");
    c.Rebuild();
    pl = std::make_unique<Pipeline>(*c.cell, 0, c.ct.get());
    r = Run{{}, pl.get()};
    fe = c.n.port["frontend"];
    my = c.n.port["myapp"];
  }
  void Send(const Bytes& f) { r.Send(*c.snap, fe, f); }
  size_t Delivered() {
    auto got = r.Take(my);
    for (auto* m : got) rte_pktmbuf_free(m);
    return got.size();
  }
};

TEST_CASE("fragments: later fragments take their datagram's ports and its verdict; unknown ones are 175",
          "[conntrack][fragments][cilium:bpf/lib/ipv4.h ipv4_handle_fragmentation]") {
  FragRig g;
  auto [first, rest] = Fragments4("10.1.0.10", "10.1.0.20", 80);
  g.Send(first);
  g.Send(rest);
  CHECK(g.Delivered() == 2);  // both: the second took port 80 from the first
  CHECK(g.c.ct->fragments() == 1);

  auto [f2, r2] = Fragments4("10.1.0.10", "10.1.0.20", 8080);
  g.Send(f2);
  g.Send(r2);
  CHECK(g.Delivered() == 0);
  CHECK(g.pl->dropped(DropReason::kPolicyDenied) == 2);  // the later one judged on 8080, not 175
  CHECK(g.pl->dropped(DropReason::kFirstFragmentNotFound) == 0);

  // A later fragment whose first fragment was never seen (another IP id).
  Bytes orphan = rest;
  orphan[14 + 4] = 0x22;  // id 0x2211
  uint16_t ck = 0;
  std::memcpy(&orphan[14 + 10], &ck, 2);
  ck = uint16_t(~rte_raw_cksum(&orphan[14], 20));
  std::memcpy(&orphan[14 + 10], &ck, 2);
  g.Send(orphan);
  CHECK(g.Delivered() == 0);
  CHECK(g.pl->dropped(DropReason::kFirstFragmentNotFound) == 1);
  // After the record's timeout (30 s) the datagram is unknown again.
  g.c.ct->Collect(rte_rdtsc() + 31 * rte_get_tsc_hz(), 1 << 20);
  g.c.ct->Collect(rte_rdtsc() + 31 * rte_get_tsc_hz(), 1);  // slots freed (no reader online)
  CHECK(g.c.ct->fragments() == 0);
  g.Send(rest);
  CHECK(g.pl->dropped(DropReason::kFirstFragmentNotFound) == 2);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("IPv6 fragments are tracked by the fragment header's identification",
          "[conntrack][fragments][ipv6]") {
  FragRig g({{"frontend", "fd00:1::10"}, {"test", "fd00:1::11"}, {"myapp", "fd00:1::20"}});
  auto [first, rest] = Fragments6("fd00:1::10", "fd00:1::20", 80);
  g.Send(first);
  g.Send(rest);
  CHECK(g.Delivered() == 2);
  auto [f2, r2] = Fragments6("fd00:1::10", "fd00:1::20", 81);
  g.Send(f2);
  g.Send(r2);
  CHECK(g.Delivered() == 0);
  CHECK(g.pl->dropped(DropReason::kPolicyDenied) == 2);
  CHECK(g.pl->dropped(DropReason::kFirstFragmentNotFound) == 0);
}

TEST_CASE("a fragmented packet to a service frontend is not translated: 157",
          "[conntrack][fragments][service]") {
  CtNode c;
  dataplane::ServiceSpec svc;
  svc.vip = *identity::IpAddr::Parse("10.96.0.80");
  svc.port = 80;
  svc.proto = 6;
  svc.backends.push_back({*identity::IpAddr::Parse("10.1.0.20"), 8080});
  c.n.services = {svc};
  c.Rebuild();
  Pipeline pl(*c.cell, 0, c.ct.get());
  Run r{{}, &pl};
  auto [first, rest] = Fragments4("10.1.0.10", "10.96.0.80", 80);
  r.Send(*c.snap, c.n.port["frontend"], first);
  r.Send(*c.snap, c.n.port["frontend"], rest);
  CHECK(r.Take(c.n.port["myapp"]).empty());
  CHECK(pl.dropped(DropReason::kFragmentationNotSupported) == 2);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("two workers: one sees the request, the other the reply", "[conntrack][workers]") {
  CtNode c;
  c.n.w.Apply(kClientLockdown);
  c.Rebuild();
  Pipeline a(*c.cell, 0, c.ct.get()), b(*c.cell, 1, c.ct.get());
  Run ra{{}, &a}, rb{{}, &b};
  uint16_t fe = c.n.port["frontend"], my = c.n.port["myapp"];
  for (uint16_t sp = 1000; sp < 1100; ++sp) {
    ra.Send(*c.snap, fe, Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 6, Tcp(sp, 80))));
  }
  for (auto* m : ra.Take(my)) rte_pktmbuf_free(m);
  for (uint16_t sp = 1000; sp < 1100; ++sp) {
    rb.Send(*c.snap, my, Reply("10.1.0.20", "10.1.0.10", 80, sp));
  }
  auto got = rb.Take(fe);
  CHECK(got.size() == 100);
  for (auto* m : got) rte_pktmbuf_free(m);
  CHECK(a.counters().ct_new == 100);
  CHECK(b.counters().ct_replies == 100);
  CHECK(c.ct->size() == 100);  // one record per connection, either direction
}

TEST_CASE("a full table drops new connections with 155 and keeps serving known ones",
          "[conntrack][full]") {
  CtNode c(16);
  c.Rebuild();
  Pipeline pl(*c.cell, 0, c.ct.get());
  Run r{{}, &pl};
  uint16_t fe = c.n.port["frontend"], my = c.n.port["myapp"];
  for (uint16_t sp = 1; sp <= 2000; ++sp) {
    r.Send(*c.snap, fe, Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 6, Tcp(sp, 80))));
    for (auto* m : r.Take(my)) rte_pktmbuf_free(m);
  }
  uint64_t refused = pl.dropped(DropReason::kCtMapInsertionFailed);
  CHECK(refused > 0);
  CHECK(pl.counters().ct_new + refused == 2000);
  CHECK(pl.counters().ct_new <= 2000);
  // The first connection is still tracked: its reply passes.
  r.Send(*c.snap, my, Reply("10.1.0.20", "10.1.0.10", 80, 1));
  auto got = r.Take(fe);
  CHECK(got.size() == 1);
  for (auto* m : got) rte_pktmbuf_free(m);
  CHECK(rte_mempool_avail_count(Pool()) == 1023);
}

TEST_CASE("TCP timeouts follow the state: SYN 60 s, established 8000 s, FIN 10 s; UDP 60 s",
          "[conntrack][timeouts][cilium:pkg/option bpf-ct-timeout-regular-*]") {
  Table tab(64);
  Conntrack& t = *tab.ct;
  const uint64_t hz = tab.hz, t0 = tab.t0;
  CtKey k = Tuple(6, 1, 80);
  auto state_at = [&](const CtKey& key, uint64_t now) {
    CtResult res;
    int32_t pos;
    t.LookupBurst(&key, 1, now, &res, &pos);
    return res;
  };
  int32_t pos;
  REQUIRE(t.Create(k, 0x02, t0, &pos));                     // SYN
  CHECK(state_at(k, t0 + 59 * hz) == CtResult::kForward);
  CHECK(state_at(k, t0 + 61 * hz) == CtResult::kNew);       // half-open expired
  CHECK(state_at(k.Reversed(), t0 + 30 * hz) == CtResult::kReply);
  t.Update(pos, CtResult::kReply, 0x12, t0 + 30 * hz);      // SYN-ACK: established
  CHECK(state_at(k, t0 + 7000 * hz) == CtResult::kForward);
  CHECK(state_at(k, t0 + 8100 * hz) == CtResult::kNew);
  t.Update(pos, CtResult::kForward, 0x11, t0 + 100 * hz);   // FIN
  CHECK(state_at(k, t0 + 109 * hz) == CtResult::kForward);
  CHECK(state_at(k, t0 + 111 * hz) == CtResult::kNew);
  CtKey u = k;
  u.proto = 17;
  REQUIRE(t.Create(u, 0, t0, &pos));
  CHECK(state_at(u, t0 + 59 * hz) == CtResult::kForward);
  CHECK(state_at(u, t0 + 61 * hz) == CtResult::kNew);
}

TEST_CASE("collection removes expired entries in steps, freeing slots after a grace period",
          "[conntrack][gc]") {
  auto cell = RcuCell<Snapshot>::Create(1);
  RcuCell<Snapshot>& rc = **cell;
  REQUIRE(rc.RegisterReader(0).ok());
  rc.Online(0);
  auto ct = Conntrack::Create(256, rc.qsbr());
  Conntrack& t = **ct;
  const uint64_t hz = rte_get_tsc_hz(), t0 = 1000 * hz;
  auto key = [](uint16_t i) {
    CtKey k;
    k.family = 4;
    k.proto = 17;
    k.sport = i;
    k.dport = 53;
    k.src[0] = 10;
    k.dst[0] = 11;
    return k;
  };
  for (uint16_t i = 0; i < 100; ++i) {
    int32_t pos;
    REQUIRE(t.Create(key(i), 0, i < 50 ? t0 : t0 + 1000 * hz, &pos));
  }
  CHECK(t.size() == 100);  // one record per connection
  uint32_t deleted = 0;
  for (int step = 0; step < 100; ++step) deleted += t.Collect(t0 + 100 * hz, 16);
  CHECK(deleted == 50);
  // The worker has not passed quiescence: the deleted keys still hold
  // their slots (a reader may hold their positions).
  CHECK(t.size() == 100);
  t.Collect(t0 + 100 * hz, 1);
  CHECK(t.size() == 100);
  rc.Quiescent(0);
  t.Collect(t0 + 100 * hz, 1);  // now the retired slots are freed
  CHECK(t.size() == 50);
  for (uint16_t i = 200; i < 450; ++i) {  // capacity is usable again
    int32_t pos;
    if (!t.Create(key(i), 0, t0, &pos)) break;
  }
  CHECK(t.size() >= 200);
  rc.Offline(0);
}

TEST_CASE("a full table finds every connection both ways, over rounds of churn",
          "[conntrack][table]") {
  // 1,024 connections in 256 buckets of 8 index slots (one key each, of
  // random addresses, so bucket loads are Poisson with mean 4 and some
  // buckets overflow into their neighbours). Every round fills the table, checks
  // both directions of every connection and tuples never added, expires and
  // collects everything; overflow accounting that was missing or
  // underflowed would lose keys in this or a later round.
  constexpr uint32_t kConns = 1024;
  Table tab(kConns);
  Conntrack& t = *tab.ct;
  const uint64_t hz = rte_get_tsc_hz();
  std::mt19937 rng(42);
  for (uint32_t round = 0; round < 6; ++round) {
    INFO("round " << round);
    const uint64_t t0 = (1000 + 10000 * round) * hz;
    const uint8_t family = round % 2 ? 6 : 4;
    std::vector<CtKey> keys;
    std::vector<int32_t> pos(kConns);
    for (uint32_t i = 0; i < kConns; ++i) {
      keys.push_back(RandomTuple(rng, family));
      REQUIRE(t.Create(keys[i], 0x02, t0, &pos[i]));
    }
    CHECK(t.size() == kConns);
    int32_t extra;
    CHECK_FALSE(t.Create(RandomTuple(rng, family), 0, t0, &extra));  // full: 155 in the pipeline
    uint32_t found = 0, replies = 0, strangers = 0;
    for (uint32_t i = 0; i < kConns; ++i) {
      CtResult r;
      int32_t p;
      t.LookupBurst(&keys[i], 1, t0 + hz, &r, &p);
      found += r == CtResult::kForward && p == pos[i];
      CtKey rev = keys[i].Reversed();
      t.LookupBurst(&rev, 1, t0 + hz, &r, &p);
      replies += r == CtResult::kReply && p == pos[i];
      CtKey other = RandomTuple(rng, family);
      t.LookupBurst(&other, 1, t0 + hz, &r, &p);
      strangers += r != CtResult::kNew;
    }
    CHECK(found == kConns);
    CHECK(replies == kConns);
    CHECK(strangers == 0);
    uint32_t removed = 0;
    for (int step = 0; step < 64; ++step) removed += t.Collect(t0 + 100 * hz, 32);  // SYN: 60 s
    CHECK(removed == kConns);
    t.Collect(t0 + 100 * hz, 1);  // no reader online: the records are free again
    CHECK(t.size() == 0);
  }
}

TEST_CASE("one index key per connection: a tuple and its reversal hash alike, others apart",
          "[conntrack][table]") {
  // Both directions of a connection share one index key (Conntrack::HashOf
  // orders the two address:port ends); the record's tuple tells which
  // direction a packet is. Tuples that are not each other's reversal must
  // still hash apart: in particular the same ends with the ports crossed
  // (10.0.0.1:1 -> 10.0.0.2:2 and 10.0.0.1:2 -> 10.0.0.2:1), which a hash
  // of sorted addresses and sorted ports would collide.
  std::mt19937 rng(9);
  auto random_key = [&](uint8_t family) {
    CtKey k = RandomTuple(rng, family);
    if (rng() % 4 == 0) std::memcpy(k.dst, k.src, 16);  // same address, ports decide
    return k;
  };
  auto same = [](SlotIndex::Hash a, SlotIndex::Hash b) { return a.h == b.h && a.sig == b.sig; };
  Table tab(64), other_tab(64);  // each with its own random hash key
  Conntrack& t = *tab.ct;
  uint32_t crossed_alike = 0, proto_alike = 0, tables_alike = 0;
  for (int i = 0; i < 2000; ++i) {
    const CtKey k = random_key(i % 2 ? 6 : 4);
    INFO("key " << i);
    REQUIRE(same(t.HashOf(k), t.HashOf(k.Reversed())));
    if (k.family == 4) {
      uint32_t s4, d4;
      std::memcpy(&s4, k.src, 4);
      std::memcpy(&d4, k.dst, 4);
      const uint64_t head = uint64_t(k.family) | uint64_t(k.proto) << 8 |
                            uint64_t(k.sport) << 32 | uint64_t(k.dport) << 48;
      REQUIRE(same(t.HashOf4(head, s4, d4), t.HashOf(k)));
    }
    CtKey crossed = k;
    std::swap(crossed.sport, crossed.dport);
    // (With one address on both ends, crossing the ports is the reversal.)
    const bool crossed_is_other = k.sport != k.dport && std::memcmp(k.src, k.dst, 16) != 0;
    crossed_alike += crossed_is_other && same(t.HashOf(crossed), t.HashOf(k));
    CtKey other = k;
    other.proto = k.proto == 6 ? 17 : 6;
    proto_alike += same(t.HashOf(other), t.HashOf(k));
    tables_alike += same(other_tab.ct->HashOf(k), t.HashOf(k));
  }
  CHECK(crossed_alike == 0);
  CHECK(proto_alike == 0);

  // Keyed: another table puts the same tuples elsewhere (a key shared by
  // all tables would let a sender compute colliding tuples once for all).
  CHECK(tables_alike < 10);

  // In the table: either direction finds the one record; the crossed tuple
  // and a tuple that is its own reversal are told apart by the record.
  CtKey k = Tuple(6, 1000, 2000);
  CtKey self = Tuple(17, 7, 7);
  std::memcpy(self.dst, self.src, 16);  // 10.0.0.0:7 -> 10.0.0.0:7
  int32_t pk, ps, p;
  REQUIRE(t.Create(k, 0x02, tab.t0, &pk));
  REQUIRE(t.Create(self, 0, tab.t0, &ps));
  CHECK(t.size() == 2);
  CtResult r;
  t.LookupBurst(&k, 1, tab.t0, &r, &p);
  CHECK((r == CtResult::kForward && p == pk));
  CtKey rev = k.Reversed();
  t.LookupBurst(&rev, 1, tab.t0, &r, &p);
  CHECK((r == CtResult::kReply && p == pk));
  CtKey crossed = Tuple(6, 2000, 1000);
  t.LookupBurst(&crossed, 1, tab.t0, &r, &p);
  CHECK(r == CtResult::kNew);
  CtKey crossed_rev = crossed.Reversed();
  t.LookupBurst(&crossed_rev, 1, tab.t0, &r, &p);
  CHECK(r == CtResult::kNew);
  CtKey udp = k;
  udp.proto = 17;
  t.LookupBurst(&udp, 1, tab.t0, &r, &p);
  CHECK(r == CtResult::kNew);
  t.LookupBurst(&self, 1, tab.t0, &r, &p);
  CHECK((r == CtResult::kForward && p == ps));
}

TEST_CASE("structured tuples spread over the index: a full table of each shape fits",
          "[conntrack][table]") {
  // Real traffic varies one field at a time: a client's source ports, many
  // clients of one server, one client to many servers. Each shape fills a
  // table to its last record; a hash that lost a field would pile that
  // shape's keys into a few buckets, and inserts fail once 32 buckets of 8
  // are full.
  constexpr uint32_t kConns = 4096;
  for (int shape = 0; shape < 4; ++shape) {
    INFO("shape " << shape);
    Table tab(kConns);
    Conntrack& t = *tab.ct;
    uint32_t created = 0, found = 0;
    std::vector<CtKey> keys;
    for (uint32_t i = 0; i < kConns; ++i) {
      CtKey k = Tuple(6, 40000, 443);
      switch (shape) {
        case 0: k.sport = uint16_t(1024 + i); break;          // one client's ports
        case 1: k.src[2] = uint8_t(i >> 8), k.src[3] = uint8_t(i); break;  // clients
        case 2: k.dst[2] = uint8_t(i >> 8), k.dst[3] = uint8_t(i); break;  // servers
        case 3:  // IPv6 clients, ports varying too
          k.family = 6;
          k.src[14] = uint8_t(i >> 8), k.src[15] = uint8_t(i);
          k.sport = uint16_t(1024 + (i & 7));
          break;
      }
      keys.push_back(k);
      int32_t p;
      created += t.Create(k, 0x02, tab.t0, &p);
    }
    CHECK(created == kConns);
    for (const CtKey& k : keys) {
      CtResult r;
      int32_t p;
      CtKey rev = k.Reversed();
      t.LookupBurst(&rev, 1, tab.t0, &r, &p);
      found += r == CtResult::kReply;
    }
    CHECK(found == kConns);
  }
}

TEST_CASE("the packet-keyed rte_hash tables (fragments, affinity) are seeded per table",
          "[conntrack][table]") {
  // Their keys come from packets: each table hashes with its own random
  // seed (jhash, as the kernel's maps), so keys chosen to share buckets in
  // one cannot be computed from outside.
  auto a = SharedHashCreate("test a", 1024, sizeof(FragKey));
  auto b = SharedHashCreate("test b", 1024, sizeof(FragKey));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::mt19937 rng(3);
  uint32_t alike = 0;
  for (int i = 0; i < 64; ++i) {
    FragKey k;
    k.family = 4;
    k.proto = 17;
    k.id = rng();
    k.src[0] = uint8_t(rng());
    alike += rte_hash_hash(*a, &k) == rte_hash_hash(*b, &k);
  }
  CHECK(alike < 4);
  rte_hash_free(*a);
  rte_hash_free(*b);
}

TEST_CASE("a record's tuple tells a packet's direction, or that it is another connection",
          "[conntrack][table]") {
  // Both directions share an index key, so every signature match is asked
  // CtDirection: each field of both orientations must be compared. The
  // word-wise version (CPUs without AVX2) must answer the same.
  auto direction = [](const CtKey& c, const CtKey& k) {
    const CtResult r = CtDirection(c, k);
    CHECK(CtDirectionWords(c, k) == r);
    return r;
  };
  for (uint8_t family : {4, 6}) {
    INFO("IPv" << int(family));
    CtKey c = Tuple(6, 1000, 2000);
    c.family = family;
    if (family == 6) {
      c.src[15] = 1;
      c.dst[15] = 2;
    }
    CtKey rec = c;
    rec.aux[0] = 1;  // the record's TCP state and live flag: never compared
    rec.aux[1] = 1;
    CHECK(direction(rec, c) == CtResult::kForward);
    CHECK(direction(rec, c.Reversed()) == CtResult::kReply);
    CtKey k = c;
    std::swap(k.sport, k.dport);  // the ports crossed, the addresses not
    CHECK(direction(rec, k) == CtResult::kNew);
    CHECK(direction(rec, k.Reversed()) == CtResult::kNew);
    k = c;
    std::swap(k.src, k.dst);  // the addresses crossed, the ports not
    CHECK(direction(rec, k) == CtResult::kNew);
    CHECK(direction(rec, k.Reversed()) == CtResult::kNew);
    for (int field = 0; field < 6; ++field) {  // one field off, either way
      INFO("field " << field);
      k = c;
      switch (field) {
        case 0: k.proto = 17; break;
        case 1: k.family = family == 4 ? 6 : 4; break;
        case 2: ++k.sport; break;
        case 3: ++k.dport; break;
        case 4: k.src[family == 4 ? 3 : 15] ^= 0x80; break;
        case 5: k.dst[family == 4 ? 0 : 7] ^= 0x01; break;
      }
      CHECK(direction(rec, k) == CtResult::kNew);
      CHECK(direction(rec, k.Reversed()) == CtResult::kNew);
    }
  }
}

TEST_CASE("an expired connection's tuple gets a new record; the collector removes only the old",
          "[conntrack][table]") {
  const CtKey k = Tuple(17, 5353, 53);  // UDP: 60 s
  Table tab(64);
  Conntrack& t = *tab.ct;
  const uint64_t hz = tab.hz, t0 = tab.t0;
  int32_t old_pos, new_pos, p;
  CtResult r;
  REQUIRE(t.Create(k, 0, t0, &old_pos));
  t.LookupBurst(&k, 1, t0 + 61 * hz, &r, &p);
  CHECK(r == CtResult::kNew);  // UDP: 60 s
  REQUIRE(t.Create(k, 0, t0 + 61 * hz, &new_pos));
  CHECK(new_pos != old_pos);
  t.LookupBurst(&k, 1, t0 + 62 * hz, &r, &p);  // the expired record comes first, and is skipped
  CHECK(r == CtResult::kForward);
  CHECK(p == new_pos);
  // The same in halves (Pipeline::Process): the old record is the first
  // candidate until it is collected; the one pass refuses it, the full
  // lookup finds the live record further on.
  const SlotIndex::Hash h = t.HashOf(k);
  uint32_t cand;
  t.Candidates(&h, 1, &cand);
  REQUIRE(cand == uint32_t(old_pos) + 1);
  CHECK(ForwardPos(t, cand, k, t0 + 62 * hz) == -1);
  CHECK(t.LookupCandidates(&k, &h, &cand, 0, 1, t0 + 62 * hz, &r, &p) == 0);
  CHECK(r == CtResult::kForward);
  CHECK(p == new_pos);
  CHECK(t.Collect(t0 + 62 * hz, 64) == 1);
  CtKey rev = k.Reversed();
  t.LookupBurst(&rev, 1, t0 + 63 * hz, &r, &p);
  CHECK(r == CtResult::kReply);
  CHECK(p == new_pos);
}

TEST_CASE("the lookup in halves: the one pass takes only a live forward tuple in its first candidate",
          "[conntrack][table]") {
  // Pipeline::Process fetches a burst's first candidates (Candidates),
  // delivers the leading packets ForwardCandidate accepts, and looks up the
  // rest in full (LookupCandidates). Anything ForwardCandidate accepts must
  // be what LookupHashed finds; anything else it must refuse.
  Table tab(64);
  Conntrack& t = *tab.ct;
  const CtKey k = Tuple(6, 40000, 443), rev = k.Reversed(), other = Tuple(6, 40001, 443);
  int32_t pos0;
  REQUIRE(t.Create(k, 0x02, tab.t0, &pos0));  // TCP SYN: 60 s
  t.CacheVerdict(pos0, CtVerdict{7, 9, 3, 1234 | CtVerdict::kEgress});  // (AVX: read back)
  const uint64_t hz = tab.hz, t0 = tab.t0;
  const CtKey keys[3] = {k, rev, other};
  const SlotIndex::Hash h[3] = {t.HashOf(k), t.HashOf(rev), t.HashOf(other)};
  uint32_t cand[3];
  t.Candidates(h, 3, cand);
  CHECK(cand[0] != 0);
  CHECK(cand[1] == cand[0]);  // one index key per connection, either way
  CHECK(ForwardPos(t, cand[0], k, t0 + hz) == pos0);
  CHECK(ForwardPos(t, cand[1], rev, t0 + hz) == -1);  // a reply: the general stages
  CHECK(ForwardPos(t, cand[0], other, t0 + hz) == -1);  // another tuple's record
  CHECK(ForwardPos(t, cand[2], other, t0 + hz) == -1);  // not tracked
  CHECK(ForwardPos(t, 0, k, t0 + hz) == -1);            // no candidate
  CHECK(ForwardPos(t, cand[0], k, t0 + 61 * hz) == -1);  // expired
  // The rest of a burst from its second packet on: the reply and the stranger.
  CtResult res[3];
  int32_t pos[3];
  CHECK(t.LookupCandidates(keys, h, cand, 1, 3, t0 + hz, res, pos) == 1);
  CHECK(res[1] == CtResult::kReply);
  CHECK(pos[1] == pos0);
  CHECK(res[2] == CtResult::kNew);
  CHECK(pos[2] == -1);
}

TEST_CASE("a reused record carries no NAT of its past; the lookup's hash creates the same entry",
          "[conntrack][table]") {
  Table tab(8);
  Conntrack& t = *tab.ct;
  const uint64_t hz = tab.hz, t0 = tab.t0;
  CtNat nat;
  nat.kind = CtNat::kReverse;
  nat.family = 4;
  nat.port = 80;
  nat.addr[0] = 10;
  int32_t p;
  REQUIRE(t.Create(Tuple(17, 1, 53), 0, t0, &p, nat));
  CHECK(t.Nat(p).kind == CtNat::kReverse);
  CHECK(t.Collect(t0 + 61 * hz, 8) == 1);  // UDP: 60 s
  t.Collect(t0 + 61 * hz, 1);              // no reader online: free again
  REQUIRE(t.size() == 0);
  // Every record, the one that had the NAT among them, for connections
  // without one, created with the hash their lookup used.
  for (uint16_t i = 0; i < 8; ++i) {
    CtKey k = Tuple(17, uint16_t(100 + i), 53);
    CtResult r;
    int32_t pos;
    const SlotIndex::Hash h = t.HashOf(k);
    t.Prefetch(h);
    REQUIRE(t.LookupHashed(&k, &h, 1, t0 + 62 * hz, &r, &pos) == 1);
    REQUIRE(r == CtResult::kNew);
    REQUIRE(t.Create(k, 0, t0 + 62 * hz, &pos, {}, &h));
    CHECK(t.Nat(pos).kind == CtNat::kNone);
    t.LookupBurst(&k, 1, t0 + 63 * hz, &r, &p);
    CHECK(r == CtResult::kForward);
    CHECK(p == pos);
    CtKey rev = k.Reversed();
    t.LookupBurst(&rev, 1, t0 + 63 * hz, &r, &p);
    CHECK(r == CtResult::kReply);
    CHECK(p == pos);
  }
}

TEST_CASE("a burst's reserved records: used in turn, the rest given back; a full table refuses",
          "[conntrack][table]") {
  Table tab(8);
  Conntrack& t = *tab.ct;
  const uint64_t t0 = tab.t0;
  std::set<int32_t> used;
  int32_t p;
  {
    Conntrack::Reservation r;
    t.Reserve(r, 5);
    REQUIRE(r.n == 5);
    CHECK(t.size() == 5);  // held while the burst runs
    for (uint16_t i = 0; i < 3; ++i) {
      REQUIRE(t.Create(Tuple(17, uint16_t(10 + i), 53), 0, t0, &p, {}, nullptr, &r));
      CHECK(p == int32_t(r.ids[i]));  // the reserved records, in turn
      used.insert(p);
    }
    t.Release(r);
    CHECK(t.size() == 3);  // the two left over are free again
  }
  {
    // More wanted than are free: 5 reserved, then the table is full.
    Conntrack::Reservation r;
    t.Reserve(r, 32);
    CHECK(r.n == 5);
    for (uint16_t i = 0; i < 5; ++i) {
      REQUIRE(t.Create(Tuple(17, uint16_t(20 + i), 53), 0, t0, &p, {}, nullptr, &r));
      used.insert(p);
    }
    CHECK_FALSE(t.Create(Tuple(17, 30, 53), 0, t0, &p, {}, nullptr, &r));
    t.Release(r);
  }
  CHECK(used.size() == 8);  // every record once
  CHECK(t.size() == 8);
  // Each connection is found both ways.
  for (uint16_t sp : {10, 11, 12, 20, 21, 22, 23, 24}) {
    CtKey k = Tuple(17, sp, 53), rev = k.Reversed();
    CtResult res;
    t.LookupBurst(&k, 1, t0, &res, &p);
    CHECK(res == CtResult::kForward);
    t.LookupBurst(&rev, 1, t0, &res, &p);
    CHECK(res == CtResult::kReply);
  }
}

TEST_CASE("concurrent workers and collector: every reply of an allowed connection passes",
          "[conntrack][workers][threads]") {
  CtNode c(4096);
  c.n.w.Apply(kClientLockdown);
  c.Rebuild();
  RcuCell<Snapshot>& rc = *c.cell;
  REQUIRE(rc.RegisterReader(0).ok());
  REQUIRE(rc.RegisterReader(1).ok());
  rte_mempool* pool = Pool();  // initialised here: threads below assert nothing
  const Snapshot& snap = *c.snap;
  uint16_t fe = c.n.port["frontend"], my = c.n.port["myapp"];
  constexpr uint16_t kFlows = 500;
  std::atomic<int> sent_up_to{-1};
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> requests_passed{0}, replies_passed{0}, alloc_failures{0};
  // Catch2's macros are not thread-safe: the threads only count.
  auto send = [&](Pipeline& pl, TxStage& out, uint16_t port, const Bytes& f, uint16_t to) {
    rte_mbuf* m = ToMbuf(pool, f);
    if (m == nullptr) {
      ++alloc_failures;
      return 0u;
    }
    pl.Process(snap, &m, 1, port, out);
    uint32_t got = out.n[to];
    rte_pktmbuf_free_bulk(out.pkts[to].data(), out.n[to]);
    out.n[to] = 0;
    return got;
  };
  // Writers need an lcore id (conntrack.h): register the plain threads.
  std::atomic<uint32_t> unregistered{0};
  auto reg = [&] {
    if (rte_thread_register() != 0) ++unregistered;
  };
  std::thread a([&] {  // worker 0: requests
    reg();
    rc.Online(0);
    Pipeline pl(rc, 0, c.ct.get());
    auto out = std::make_unique<TxStage>();
    for (uint16_t i = 0; i < kFlows; ++i) {
      requests_passed += send(pl, *out, fe,
          Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 6, Tcp(uint16_t(2000 + i), 80))), my);
      sent_up_to.store(i, std::memory_order_release);
      rc.Quiescent(0);
    }
    rc.Offline(0);
    rte_thread_unregister();
  });
  std::thread b([&] {  // worker 1: the replies, each once its request went out
    reg();
    rc.Online(1);
    Pipeline pl(rc, 1, c.ct.get());
    auto out = std::make_unique<TxStage>();
    for (uint16_t i = 0; i < kFlows; ++i) {
      while (sent_up_to.load(std::memory_order_acquire) < i) rc.Quiescent(1);
      replies_passed += send(pl, *out, my, Reply("10.1.0.20", "10.1.0.10", 80, uint16_t(2000 + i)), fe);
      rc.Quiescent(1);
    }
    rc.Offline(1);
    rte_thread_unregister();
  });
  std::thread gc([&] {  // control: collection running alongside
    reg();
    while (!stop.load()) c.ct->Collect(rte_rdtsc(), 64);
    rte_thread_unregister();
  });
  a.join();
  b.join();
  stop = true;
  gc.join();
  CHECK(unregistered == 0);
  CHECK(alloc_failures == 0);
  CHECK(requests_passed == kFlows);
  CHECK(replies_passed == kFlows);
  CHECK(c.ct->size() == kFlows);  // nothing expired, nothing lost
}

TEST_CASE("ICMP errors quoting a tracked connection are related and skip policy",
          "[conntrack][related][cilium:bpf/bpf_lxc.c CT_RELATED]") {
  CtNode c;
  c.n.uplink_port = 5;
  c.n.w.Apply(kClientLockdown);  // frontend takes no ingress at all
  c.Rebuild();
  Pipeline pl(*c.cell, 0, c.ct.get());
  Run r{{}, &pl};
  uint16_t fe = c.n.port["frontend"];
  Bytes syn = Ipv4(V4("10.1.0.10"), V4("8.8.8.8"), 6, Tcp(40000, 443));
  r.Send(*c.snap, fe, Eth(0x0800, syn));
  for (auto* m : r.Take(5)) rte_pktmbuf_free(m);
  uint32_t keys = c.ct->size();
  // A router on the way says the destination is unreachable, quoting the SYN
  // (IP header + first 8 bytes; RFC 792).
  Bytes quote(syn.begin(), syn.begin() + 28);
  auto unreachable = [](const Bytes& q) {
    Bytes icmp = {3, 1, 0, 0, 0, 0, 0, 0};
    return Eth(0x0800, Ipv4(V4("192.0.2.1"), V4("10.1.0.10"), 1, Cat(icmp, q)));
  };
  r.Send(*c.snap, 5, unreachable(quote));
  auto got = r.Take(fe);
  REQUIRE(got.size() == 1);
  CHECK((Meta(got[0])->flags & kPktRelated));
  rte_pktmbuf_free(got[0]);
  // An error quoting a connection nobody made is checked, and denied.
  Bytes other = Ipv4(V4("10.1.0.10"), V4("9.9.9.9"), 6, Tcp(40001, 443));
  r.Send(*c.snap, 5, unreachable(Bytes(other.begin(), other.begin() + 28)));
  CHECK(r.Take(fe).empty());
  CHECK(pl.counters().drops[5].by_reason[133] == 1);
  // A truncated quote matches nothing.
  r.Send(*c.snap, 5, unreachable(Bytes(quote.begin(), quote.begin() + 10)));
  CHECK(r.Take(fe).empty());
  CHECK(c.ct->size() == keys);  // errors never create connections
}
