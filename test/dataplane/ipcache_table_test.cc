// The ipcache table: updated in place under readers, no snapshot rebuilt.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "dataplane/ipcache_table.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {
identity::Prefix P(const char* s) { return *identity::Prefix::Parse(s); }
}  // namespace

TEST_CASE("longest prefix, removal, IPv6 copy-on-write", "[ipcache]") {
  auto cell = RcuCell<Snapshot>::Create(1);
  auto t = IpcacheTable::Create({1024, 64}, (*cell)->qsbr());
  REQUIRE(t.ok());
  IpcacheTable& tab = **t;
  REQUIRE(tab.Upsert(P("10.0.0.0/8"), {100}).ok());
  REQUIRE(tab.Upsert(P("10.1.2.3/32"), {300, 4, Route::kLocal}).ok());
  CHECK(tab.At(tab.Lookup4(V4("10.1.2.3"))).identity == 300);
  CHECK(tab.At(tab.Lookup4(V4("10.1.2.3"))).port == 4);
  CHECK(tab.At(tab.Lookup4(V4("10.7.7.7"))).identity == 100);
  CHECK(tab.Lookup4(V4("11.0.0.1")) == kOutsideRoute);
  CHECK(tab.At(kOutsideRoute).identity == identity::reserved::kWorld);
  REQUIRE(tab.Remove(P("10.1.2.3/32")).ok());
  CHECK(tab.At(tab.Lookup4(V4("10.1.2.3"))).identity == 100);
  CHECK_FALSE(tab.Remove(P("10.1.2.3/32")).ok());
  uint8_t a6[16] = {0xfd, 0, 0, 1};
  a6[15] = 5;
  CHECK(tab.Lookup6(a6) == kOutsideRoute);
  REQUIRE(tab.Upsert(P("fd00:1::/32"), {600}).ok());
  CHECK(tab.At(tab.Lookup6(a6)).identity == 600);
  REQUIRE(tab.Upsert(P("fd00:1::5/128"), {605}).ok());
  CHECK(tab.At(tab.Lookup6(a6)).identity == 605);
  REQUIRE(tab.Remove(P("fd00:1::5/128")).ok());
  CHECK(tab.At(tab.Lookup6(a6)).identity == 600);
  CHECK(tab.size() == 2);
}

TEST_CASE("a table of more routes than an IPv6 LPM next hop can name is refused", "[ipcache]") {
  auto cell = RcuCell<Snapshot>::Create(1);
  REQUIRE(cell.ok());
  auto big = IpcacheTable::Create({IpcacheTable::kMaxRoutes + 1, 64}, (*cell)->qsbr());
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(big.status().message()), Catch::Contains("21 bits"));
  CHECK_FALSE(IpcacheTable::Create({0, 64}, (*cell)->qsbr()).ok());
}

TEST_CASE("10,000 in-place updates under a reader: never a torn or foreign route",
          "[ipcache][threads][rcu]") {
  auto cell = RcuCell<Snapshot>::Create(1);
  RcuCell<Snapshot>& rc = **cell;
  REQUIRE(rc.RegisterReader(0).ok());
  auto t = IpcacheTable::Create({64, 16}, rc.qsbr());  // few slots: they must be recycled
  REQUIRE(t.ok());
  IpcacheTable& tab = **t;
  const Route a{100, 1, Route::kLocal, 0}, b{200, 2, Route::kRemote, V4("192.168.0.2")};
  REQUIRE(tab.Upsert(P("10.9.0.1/32"), a).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::thread reader([&] {
    rc.Online(0);
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 32; ++i) {
        const Route& r = tab.At(tab.Lookup4(V4("10.9.0.1")));
        if (!(r == a) && !(r == b)) bad.fetch_add(1, std::memory_order_relaxed);
      }
      reads.fetch_add(32, std::memory_order_relaxed);
      rc.Quiescent(0);
    }
    rc.Offline(0);
  });
  while (reads.load() == 0) std::this_thread::yield();  // overlap for real
  uint64_t reads_at_start = reads.load();
  int failures = 0;
  for (int i = 0; i < 10000; ++i) {
    if (!tab.Upsert(P("10.9.0.1/32"), i % 2 ? a : b).ok()) {
      ++failures;  // full: every slot still retired; the reader will free them
      std::this_thread::yield();
    }
    tab.Reclaim();
  }
  uint64_t reads_at_end = reads.load();
  while (reads.load() < reads_at_end + 64) std::this_thread::yield();
  stop = true;
  reader.join();
  CHECK(bad == 0);
  CHECK(reads_at_end > reads_at_start);  // the reader ran during the updates
  CHECK(failures < 10000);
}

TEST_CASE("an ipcache change takes effect without a new snapshot", "[ipcache][pipeline]") {
  Node n;
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe-egress}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress: [{toEndpoints: [{matchLabels: {app: myapp}}]}]
)");
  // 10.2.0.20 is a remote myapp (cluster2), reached through no fabric: the
  // packet is dropped after policy, so the drop reason tells which check.
  auto remote_myapp = n.w.Add("myapp", {{"app", "myapp"}}, "default", "cluster2");
  auto remote_test = n.w.Add("test", {{"app", "test"}}, "default", "cluster2");
  identity::IpCacheEntry e;
  e.id = remote_myapp;
  e.tunnel_endpoint = identity::IpAddr::V4(V4("192.168.0.2"));
  n.w.ipcache.Upsert(P("10.2.0.20/32"), e);
  auto cell = RcuCell<Snapshot>::Create(1);
  Pipeline pl(**cell, 0);
  auto snap = n.Build();
  const Snapshot* before = snap.get();
  Run r{{}, &pl};
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.2.0.20", 80));
  CHECK(pl.dropped(DropReason::kNoTunnelEndpoint) == 1);  // allowed; no fabric here
  // The address now belongs to a test pod: update the table only.
  e.id = remote_test;
  n.w.ipcache.Upsert(P("10.2.0.20/32"), e);
  std::vector<SnapshotEndpoint> local;  // the same local endpoints as the snapshot
  for (const auto& ep : snap->endpoints) {
    SnapshotEndpoint se;
    se.port = ep.port;
    se.identity = ep.identity;
    se.addrs.push_back(identity::IpAddr::V4(ep.v4));
    local.push_back(se);
  }
  REQUIRE(SyncIpcache(*n.table, n.w.ipcache, local).ok());
  r.Send(*snap, n.port["frontend"], TcpFrame("10.1.0.10", "10.2.0.20", 80));
  CHECK(pl.dropped(DropReason::kPolicyDenied) == 1);  // egress: test is not myapp
  CHECK(snap.get() == before);
}

TEST_CASE("host routes: 20,000 IPv4 and 2,000 IPv6 in the exact index, churned under a reader",
          "[ipcache][hosts][threads]") {
  // Host routes (/32, /128) are looked up in the exact-match index before
  // the LPM. A reader keeps resolving one address that is always present
  // (behind prefixes that would give another identity) while control adds
  // and removes thousands of others around it, in both families.
  auto cell = RcuCell<Snapshot>::Create(1);
  RcuCell<Snapshot>& rc = **cell;
  REQUIRE(rc.RegisterReader(0).ok());
  auto t = IpcacheTable::Create({1 << 16, 256}, rc.qsbr());
  REQUIRE(t.ok());
  IpcacheTable& tab = **t;
  REQUIRE(tab.Upsert(P("10.0.0.0/8"), {100}).ok());
  REQUIRE(tab.Upsert(P("fd00::/16"), {106}).ok());
  REQUIRE(tab.Upsert(P("10.200.0.1/32"), {777}).ok());
  REQUIRE(tab.Upsert(P("fd00::7:7/128"), {767}).ok());
  uint8_t watched6[16] = {0xfd, 0};
  watched6[13] = 7;
  watched6[15] = 7;
  auto v4 = [](uint32_t i) {
    return meshgate::StrCat("10.", i >> 16 & 0xff, ".", i >> 8 & 0xff, ".", i & 0xff, "/32");
  };
  auto v6 = [](uint32_t i) { return meshgate::StrCat("fd00::1:", i, "/128"); };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::thread reader([&] {
    rc.Online(0);
    while (!stop.load(std::memory_order_relaxed)) {
      bad += tab.At(tab.Lookup4(V4("10.200.0.1"))).identity != 777;
      bad += tab.At(tab.Lookup6(watched6)).identity != 767;
      reads.fetch_add(1, std::memory_order_relaxed);
      rc.Quiescent(0);
    }
    rc.Offline(0);
  });
  while (reads.load() == 0) std::this_thread::yield();
  for (int round = 0; round < 3; ++round) {
    for (uint32_t i = 1; i <= 20000; ++i) REQUIRE(tab.Upsert(P(v4(i).c_str()), {1000 + i}).ok());
    for (uint32_t i = 1; i <= 2000; ++i) REQUIRE(tab.Upsert(P(v6(i).c_str()), {50000 + i}).ok());
    uint32_t right = 0;
    for (uint32_t i = 1; i <= 20000; ++i) {
      std::string a = v4(i);
      right += tab.At(tab.Lookup4(V4(a.substr(0, a.size() - 3).c_str()))).identity == 1000 + i;
    }
    CHECK(right == 20000);
    uint32_t right6 = 0;
    for (uint32_t i = 1; i <= 2000; ++i) {
      auto addr = identity::IpAddr::Parse(v6(i).substr(0, v6(i).size() - 4));
      REQUIRE(addr.ok());
      right6 += tab.At(tab.Lookup6(addr->bytes.data())).identity == 50000 + i;
    }
    CHECK(right6 == 2000);
    for (uint32_t i = 1; i <= 20000; ++i) REQUIRE(tab.Remove(P(v4(i).c_str())).ok());
    for (uint32_t i = 1; i <= 2000; ++i) REQUIRE(tab.Remove(P(v6(i).c_str())).ok());
    CHECK(tab.At(tab.Lookup4(V4("10.0.0.9"))).identity == 100);  // the prefix again
    tab.Reclaim();
  }
  stop = true;
  reader.join();
  CHECK(bad.load() == 0);
  CHECK(tab.size() == 4);
}
