// The instance: ports from device strings, workers on lcores or polled,
// everything per instance (two instances in one process).
#include <catch2/catch.hpp>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "dataplane/instance.h"
#include "identity/strutil.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {

// A net_ring port whose RX and TX rings the test holds.
struct RingPort {
  std::string name;
  rte_ring* rx;
  rte_ring* tx;
  explicit RingPort(const std::string& n) : name(n) {
    rx = rte_ring_create((n + "_rx").c_str(), 1024, SOCKET_ID_ANY, 0);
    tx = rte_ring_create((n + "_tx").c_str(), 1024, SOCKET_ID_ANY, 0);
    REQUIRE((rx && tx));
    REQUIRE(rte_eth_from_rings(n.c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY) >= 0);
  }
  void Inject(rte_mempool* pool, const Bytes& f) {
    rte_mbuf* m = ToMbuf(pool, f);
    REQUIRE(m != nullptr);
    REQUIRE(rte_ring_enqueue(rx, m) == 0);
  }
  std::vector<rte_mbuf*> Drain() {
    std::vector<rte_mbuf*> v;
    void* o;
    while (rte_ring_dequeue(tx, &o) == 0) v.push_back(static_cast<rte_mbuf*>(o));
    return v;
  }
};

// Publishes the Node's endpoints on the instance's ports 0..2.
void Publish(Instance& in, Node& n) {
  SnapshotInput si;
  si.policy = &n.w.Compiled();
  si.ipcache = &in.ipcache();
  si.router_mac = kRouter;
  size_t i = 0;
  for (const auto* e : n.w.LocalInCompileOrder()) {
    SnapshotEndpoint se;
    se.port = in.port_id(i);
    se.mac = Mac(uint8_t(i + 1));
    se.identity = e->id;
    se.addrs.push_back(*identity::IpAddr::Parse(n.ip.at(e->spec.name)));
    n.port[e->spec.name] = uint16_t(i++);
    si.endpoints.push_back(se);
  }
  REQUIRE(SyncIpcache(in.ipcache(), n.w.ipcache, si.endpoints).ok());
  auto s = BuildSnapshot(si);
  REQUIRE(s.ok());
  in.snapshots().Publish(std::move(*s));
}

// An instance named `name` over the three ring ports, polled on the
// caller's thread, with the Node's endpoints published on them.
std::unique_ptr<Instance> PolledOver(const std::string& name, RingPort* const (&ring)[3], Node& n) {
  InstanceConfig cfg;
  cfg.name = name;
  // rte_eth_from_rings names its ports net_ring_<name>.
  for (const RingPort* r : ring) cfg.ports.push_back({"net_ring_" + r->name});
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  Publish(**in, n);
  return std::move(*in);
}

}  // namespace

TEST_CASE("an instance polled on the caller's thread forwards between its ports", "[instance]") {
  RingPort a("ia0"), b("ia1"), c("ia2");
  RingPort* const ring[3] = {&a, &b, &c};
  Node n;  // frontend, myapp, test: compile order (by name)
  auto in = PolledOver("inst_a", ring, n);
  ring[n.port["frontend"]]->Inject(in->pool(), TcpFrame("10.1.0.10", "10.1.0.20", 80));
  CHECK(in->Poll() == 1);
  auto out = ring[n.port["myapp"]]->Drain();
  CHECK(out.size() == 1);
  for (auto* m : out) rte_pktmbuf_free(m);
  CHECK(in->Forwarded() == 1);
  FlowEvent ev[4];
  CHECK(in->events().Dequeue(ev, 4) == 1);  // the new connection's verdict
}

TEST_CASE("one burst to three ports leaves on each; the next burst sends only its own",
          "[instance][tx]") {
  // The TX stage flushes the ports that packets were staged for (a bit
  // each), not every port id: a port staged in one burst is sent once.
  RingPort a("it0"), b("it1"), c("it2");
  RingPort* const ring[3] = {&a, &b, &c};
  Node n;  // no policy: every endpoint may reach every other
  auto in = PolledOver("inst_tx", ring, n);
  RingPort& fe = *ring[n.port["frontend"]];
  RingPort& my = *ring[n.port["myapp"]];
  RingPort& te = *ring[n.port["test"]];
  fe.Inject(in->pool(), TcpFrame("10.1.0.10", "10.1.0.20", 80));
  fe.Inject(in->pool(), TcpFrame("10.1.0.10", "10.1.0.11", 80));
  fe.Inject(in->pool(), Eth(0x0806, Arp(1, V4("10.1.0.10"), V4("10.1.0.1"))));
  fe.Inject(in->pool(), TcpFrame("10.1.0.10", "10.1.0.20", 81));
  CHECK(in->Poll() == 4);
  std::vector<rte_mbuf*> to_my = my.Drain(), to_te = te.Drain(), to_fe = fe.Drain();
  CHECK(to_my.size() == 2);
  CHECK(to_te.size() == 1);
  CHECK(to_fe.size() == 1);  // the ARP reply, on its own port
  fe.Inject(in->pool(), TcpFrame("10.1.0.10", "10.1.0.20", 80));
  CHECK(in->Poll() == 1);
  std::vector<rte_mbuf*> again_my = my.Drain(), again_te = te.Drain(), again_fe = fe.Drain();
  CHECK(again_my.size() == 1);
  CHECK(again_te.empty());
  CHECK(again_fe.empty());
  for (auto* v : {&to_my, &to_te, &to_fe, &again_my, &again_te, &again_fe}) {
    for (auto* m : *v) rte_pktmbuf_free(m);
  }
  CHECK(in->pipeline(0).counters().tx == 5);
}

TEST_CASE("maintenance collects expired connections off the hot path; live ones stay",
          "[instance][conntrack][gc]") {
  RingPort a("im0"), b("im1"), c("im2");
  RingPort* const ring[3] = {&a, &b, &c};
  Node n;
  auto in = PolledOver("inst_m", ring, n);
  for (uint16_t sp = 1000; sp < 1010; ++sp) {
    ring[n.port["frontend"]]->Inject(
        in->pool(), Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 17, Udp(sp, 53))));
  }
  CHECK(in->Poll() == 10);
  for (auto* m : ring[n.port["myapp"]]->Drain()) rte_pktmbuf_free(m);
  CHECK(in->conntrack().size() == 10);  // one record per connection
  const uint64_t hz = rte_get_tsc_hz(), now = rte_rdtsc();
  auto m = in->Maintain(now, 1 << 20);
  CHECK(m.connections == 0);  // UDP lives 60 s
  CHECK(in->conntrack().size() == 10);
  m = in->Maintain(now + 61 * hz, 1 << 20);
  CHECK(m.connections == 10);
  CHECK(in->collected_connections() == 10);
  in->Poll();  // the worker passes a quiescent state: the slots can be freed
  in->Maintain(now + 61 * hz, 1);
  CHECK(in->conntrack().size() == 0);
}

TEST_CASE("a worker lcore runs the pipeline until stopped", "[instance][lcore]") {
  unsigned worker = rte_get_next_lcore(-1, 1, 0);
  REQUIRE(worker < RTE_MAX_LCORE);  // the test EAL has -l 0,1
  RingPort a("ib0"), b("ib1"), c("ib2");
  InstanceConfig cfg;
  cfg.name = "inst_b";
  cfg.ports = {{"net_ring_ib0"}, {"net_ring_ib1"}, {"net_ring_ib2"}};
  cfg.worker_lcores = {worker};
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  CHECK_FALSE((*in)->Start().ok());  // no snapshot yet
  Node n;
  Publish(**in, n);
  REQUIRE((*in)->Start().ok());
  RingPort* ring[3] = {&a, &b, &c};
  for (int i = 0; i < 100; ++i) {
    ring[n.port["frontend"]]->Inject(
        (*in)->pool(), Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.1.0.20"), 6, Tcp(uint16_t(1000 + i), 80))));
  }
  std::vector<rte_mbuf*> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (got.size() < 100 && std::chrono::steady_clock::now() < deadline) {
    for (auto* m : ring[n.port["myapp"]]->Drain()) got.push_back(m);
    (*in)->snapshots().Reclaim();
  }
  (*in)->Stop();
  CHECK(got.size() == 100);
  for (auto* m : got) rte_pktmbuf_free(m);
}

namespace {

// A classic pcap file (libpcap format 2.4, Ethernet) holding `frames`.
void WritePcap(const std::string& path, const std::vector<Bytes>& frames) {
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
  std::fwrite(hdr, sizeof(hdr), 1, f);
  for (const auto& fr : frames) {
    const uint32_t rec[4] = {1, 0, uint32_t(fr.size()), uint32_t(fr.size())};
    std::fwrite(rec, sizeof(rec), 1, f);
    std::fwrite(fr.data(), 1, fr.size(), f);
  }
  std::fclose(f);
}

// The frames of a pcap file written by net_pcap.
std::vector<Bytes> ReadPcap(const std::string& path) {
  std::vector<Bytes> out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  uint32_t hdr[6];
  if (std::fread(hdr, sizeof(hdr), 1, f) == 1) {
    uint32_t rec[4];
    while (std::fread(rec, sizeof(rec), 1, f) == 1) {
      Bytes b(rec[2]);
      if (std::fread(b.data(), 1, b.size(), f) != b.size()) break;
      out.push_back(std::move(b));
    }
  }
  std::fclose(f);
  return out;
}

}  // namespace

TEST_CASE("net_pcap ports: frames from a capture file through the policy into capture files",
          "[instance][ports][pcap]") {
  char dir[] = "/tmp/mg-pcap-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string d = dir;
  Node n;  // frontend, myapp, test on ports 0..2 (compile order)
  n.w.Apply(R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
)");
  WritePcap(d + "/frontend.pcap",
            {TcpFrame("10.1.0.10", "10.1.0.20", 80),      // allowed
             TcpFrame("10.1.0.10", "10.1.0.20", 8080),    // denied: 133
             TcpFrame("10.1.0.99", "10.1.0.20", 80),      // spoofed: 140
             Bytes{0x01, 0x02, 0x03}});                   // runt: 134
  WritePcap(d + "/empty.pcap", {});
  {
    InstanceConfig cfg;
    cfg.name = "inst_pcap";
    for (const char* ep : {"frontend", "myapp", "test"}) {
      std::string rx = std::string(ep) == "frontend" ? d + "/frontend.pcap" : d + "/empty.pcap";
      cfg.ports.push_back({meshgate::StrCat("net_pcap_", ep, ",rx_pcap=", rx, ",tx_pcap=", d, "/",
                                            ep, "-out.pcap")});
    }
    auto in = Instance::Create(cfg);
    INFO(in.status().message());
    REQUIRE(in.ok());
    Publish(**in, n);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    uint64_t seen = 0;
    while (seen < 4 && std::chrono::steady_clock::now() < deadline) seen += (*in)->Poll();
    CHECK(seen == 4);
    CHECK((*in)->Forwarded() == 1);
    CHECK((*in)->Dropped(DropReason::kPolicyDenied) == 1);
    CHECK((*in)->Dropped(DropReason::kInvalidSourceIp) == 1);
    CHECK((*in)->Dropped(DropReason::kInvalidPacket) == 1);
  }  // the instance closes its ports: net_pcap flushes the capture files
  auto out = ReadPcap(d + "/myapp-out.pcap");
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].size() >= 54);
  CHECK(std::memcmp(out[0].data(), Mac(2).addr_bytes, 6) == 0);   // myapp's MAC
  CHECK(std::memcmp(out[0].data() + 6, kRouter.addr_bytes, 6) == 0);
  CHECK(out[0][14 + 8] == 63);  // TTL decremented
  CHECK(ReadPcap(d + "/test-out.pcap").empty());
  std::filesystem::remove_all(d);
}

TEST_CASE("device strings: virtual devices are probed; bad ones are clear errors",
          "[instance][ports]") {
  InstanceConfig cfg;
  cfg.name = "inst_c";
  cfg.ports = {{"net_bogus0"}};  // no such driver
  auto bad = Instance::Create(cfg);
  CHECK_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("net_bogus0") != std::string::npos);
  cfg.ports = {{"0000:ff:1f.7"}};  // no such PCI device (and the test EAL has --no-pci)
  CHECK_FALSE(Instance::Create(cfg).ok());
  cfg.name = "inst_d";
  cfg.ports = {{"net_null0,size=64"}};
  {
    auto in = Instance::Create(cfg);
    REQUIRE(in.ok());
    uint16_t id;
    CHECK(rte_eth_dev_get_port_by_name("net_null0", &id) == 0);
  }
  uint16_t id;
  CHECK(rte_eth_dev_get_port_by_name("net_null0", &id) != 0);  // detached with the instance
  cfg.name = "inst_e";
  auto again = Instance::Create(cfg);  // and can be opened again
  CHECK(again.ok());
}

TEST_CASE("ports whose PMD copies each received frame skip the data prefetch; the others keep it",
          "[instance][ports]") {
  // (net_tap's flag, set by Instance on a live port: tap_test.cc. memif
  // needs EAL multi-process support, which this test's --in-memory EAL
  // lacks: its ports are opened by bench link and the harness test.)
  CHECK(RxCopiesData("net_memif", "role=client,socket=/run/m.sock"));
  CHECK(RxCopiesData("net_memif", ""));
  CHECK_FALSE(RxCopiesData("net_memif", "role=client,zero-copy=yes,socket=/run/m.sock"));
  CHECK(RxCopiesData("net_vhost", "iface=/tmp/v.sock"));
  CHECK(RxCopiesData("net_tap", "iface=mg0"));
  CHECK(RxCopiesData("net_af_packet", "iface=eth0"));
  CHECK(RxCopiesData("net_pcap", "rx_pcap=in.pcap"));
  CHECK_FALSE(RxCopiesData("net_virtio_user", "path=/tmp/v.sock"));
  CHECK_FALSE(RxCopiesData("net_ring", ""));
  CHECK_FALSE(RxCopiesData("net_ice", ""));
  CHECK_FALSE(RxCopiesData("", ""));
  // A port Instance opened: net_null is no copying PMD.
  InstanceConfig cfg;
  cfg.name = "inst_m";
  cfg.ports = {{"net_null_im0,size=64"}};
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  CHECK(((*in)->port_offloads(0) & kRxDataCopied) == 0);
}
