// A real kernel interface on a net_tap port: the kernel resolves its
// neighbour through meshgate's ARP answer and its ping is forwarded to the
// other endpoint's port. Needs root and /dev/net/tun (as scripts/test has).
#include <catch2/catch.hpp>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ring.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "dataplane/instance.h"
#include "test/dataplane/pipeline_fixture.h"

using namespace meshgate;
using namespace meshgate::dataplane;
using namespace meshgate::test;

namespace {
std::string Sh(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen((cmd + " 2>&1").c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    pclose(f);
  }
  return out;
}

// An ethdev on two rte_rings (the test's side of a net_ring port), opened
// as "net_ring_<name>".
struct RingPort {
  rte_ring* rx = nullptr;  // what the test enqueues arrives on the port
  rte_ring* tx = nullptr;  // what the port sends
};
RingPort MakeRingPort(const std::string& name) {
  RingPort r;
  r.rx = rte_ring_create((name + "_rx").c_str(), 1024, SOCKET_ID_ANY, 0);
  r.tx = rte_ring_create((name + "_tx").c_str(), 1024, SOCKET_ID_ANY, 0);
  REQUIRE((r.rx && r.tx));
  REQUIRE(rte_eth_from_rings(name.c_str(), &r.rx, 1, &r.tx, 1, SOCKET_ID_ANY) >= 0);
  return r;
}

// The MAC address of a kernel interface.
rte_ether_addr IfMac(const std::string& ifname) {
  std::ifstream mf("/sys/class/net/" + ifname + "/address");
  std::string text;
  REQUIRE(std::getline(mf, text));
  rte_ether_addr mac;
  REQUIRE(rte_ether_unformat_addr(text.c_str(), &mac) == 0);
  return mac;
}
}  // namespace

TEST_CASE("net_tap: the kernel ARPs for a peer, meshgate answers, the ping is forwarded",
          "[instance][tap][arp]") {
  const std::string ifname = "mgtap" + std::to_string(getpid() % 10000);
  rte_ring* tx = MakeRingPort("tapt").tx;
  InstanceConfig cfg;
  cfg.name = "tapinst";
  cfg.ports = {{"net_tap_mgt0,iface=" + ifname}, {"net_ring_tapt"}};
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  // The kernel side of the tap is the frontend pod; myapp sits on the ring.
  const rte_ether_addr fe_mac = IfMac(ifname);
  World w;
  auto fe = w.Add("frontend", {{"app", "frontend"}});
  auto my = w.Add("myapp", {{"app", "myapp"}});
  SnapshotInput si;
  si.policy = &w.Compiled();
  si.ipcache = &(*in)->ipcache();
  si.router_mac = kRouter;
  si.endpoints = {{(*in)->port_id(0), fe_mac, fe, {identity::IpAddr::V4(V4("10.1.0.10"))}},
                  {(*in)->port_id(1), Mac(2), my, {identity::IpAddr::V4(V4("10.1.0.20"))}}};
  REQUIRE(SyncIpcache((*in)->ipcache(), w.ipcache, si.endpoints).ok());
  auto snap = BuildSnapshot(si);
  REQUIRE(snap.ok());
  (*in)->snapshots().Publish(std::move(*snap));

  Sh("ip addr add 10.1.0.10/24 dev " + ifname);
  Sh("ip link set " + ifname + " up");
  std::atomic<bool> done{false};
  std::string ping_out;
  std::thread pinger([&] {
    ping_out = Sh("ping -c 1 -W 2 10.1.0.20");  // no reply will come: one request
    done = true;
  });
  rte_mbuf* echo = nullptr;
  while (!done.load() || echo == nullptr) {
    (*in)->Poll();
    void* o;
    if (echo == nullptr && rte_ring_dequeue(tx, &o) == 0) echo = static_cast<rte_mbuf*>(o);
    if (done.load() && echo == nullptr) {
      (*in)->Poll();
      break;
    }
  }
  pinger.join();
  std::string neigh = Sh("ip neigh show 10.1.0.20 dev " + ifname);
  INFO("ip neigh: " << neigh << "ping: " << ping_out);
  char router[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(router, sizeof(router), &kRouter);
  std::string want(router);
  for (char& ch : want) ch = char(std::tolower(static_cast<unsigned char>(ch)));  // ip(8) prints lower case
  CHECK(neigh.find(want) != std::string::npos);  // the kernel learnt meshgate's answer
  REQUIRE(echo != nullptr);
  auto* ip = rte_pktmbuf_mtod_offset(echo, rte_ipv4_hdr*, 14);
  CHECK(ip->next_proto_id == 1);
  CHECK(rte_be_to_cpu_32(ip->src_addr) == V4("10.1.0.10"));
  CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("10.1.0.20"));
  CHECK(Meta(echo)->src_identity == fe);
  // The instance enabled the tap's RX checksum offload: the PMD vouched for
  // the header, and the parser took its word.
  CHECK((*in)->port_offloads(0) & kRxIpv4Cksum);
  CHECK((echo->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD);
  rte_pktmbuf_free(echo);
  CHECK((*in)->pipeline(0).counters().arp_replies >= 1);
}

TEST_CASE("net_tap as the fabric: the PMD fills in the outer IPv4 checksum meshgate leaves to it",
          "[instance][tap][offload]") {
  // net_tap offers RTE_ETH_TX_OFFLOAD_IPV4_CKSUM (and RX), net_ring none;
  // the instance enables what each device offers. The encapsulated frame is
  // read back from the kernel side of the tap with a packet socket.
  const std::string ifname = "mgfab" + std::to_string(getpid() % 10000);
  rte_ring* rx = MakeRingPort("tapf").rx;
  InstanceConfig cfg;
  cfg.name = "tapfab";
  cfg.ports = {{"net_ring_tapf"}, {"net_tap_mgf0,iface=" + ifname}};
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  CHECK((*in)->port_offloads(0) == 0);
  // (And the tap PMD reads each frame into its mbuf: kRxDataCopied.)
  CHECK((*in)->port_offloads(1) == (kRxIpv4Cksum | kTxIpv4Cksum | kRxDataCopied));
  Sh("ip link set " + ifname + " up");
  const rte_ether_addr peer_mac = IfMac(ifname);  // the kernel side plays the peer node
  int ifindex = int(if_nametoindex(ifname.c_str()));
  REQUIRE(ifindex > 0);
  int sock = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_IP));
  REQUIRE(sock >= 0);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = ifindex;
  REQUIRE(bind(sock, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) == 0);

  World w;
  w.cluster = "cluster1";
  w.cluster_id = 1;
  auto fe = w.Add("frontend", {{"app", "frontend"}}, "default", "cluster1");
  auto remote = w.Add("myapp", {{"app", "myapp"}}, "default", "cluster2");
  identity::IpCacheEntry e;
  e.id = remote;
  e.tunnel_endpoint = identity::IpAddr::V4(V4("192.168.0.2"));
  w.ipcache.Upsert(identity::Prefix::Host(identity::IpAddr::V4(V4("10.2.0.20"))), e);
  SnapshotInput si;
  si.policy = &w.Compiled();
  si.ipcache = &(*in)->ipcache();
  si.router_mac = kRouter;
  si.fabric.port = (*in)->port_id(1);
  si.fabric.node_v4 = V4("192.168.0.1");
  si.fabric.node_mac = Mac(0xf0);
  si.fabric.neighbors = {{V4("192.168.0.2"), peer_mac}};
  si.endpoints = {{(*in)->port_id(0), Mac(1), fe, {identity::IpAddr::V4(V4("10.1.0.10"))}}};
  REQUIRE(SyncIpcache((*in)->ipcache(), w.ipcache, si.endpoints).ok());
  auto snap = BuildSnapshot(si);
  REQUIRE(snap.ok());
  (*in)->snapshots().Publish(std::move(*snap));

  rte_mempool* pool = rte_pktmbuf_pool_create("tapf_pool", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              SOCKET_ID_ANY);
  REQUIRE(pool != nullptr);
  rte_mbuf* m = ToMbuf(pool, Eth(0x0800, Ipv4(V4("10.1.0.10"), V4("10.2.0.20"), 6, Tcp(40000, 80, 0x02))));
  REQUIRE(m != nullptr);
  REQUIRE(rte_ring_enqueue(rx, m) == 0);
  uint8_t frame[2048];
  ssize_t got = -1;
  bool vxlan = false;
  for (int i = 0; i < 2000 && !vxlan; ++i) {
    (*in)->Poll();
    got = recv(sock, frame, sizeof(frame), 0);
    if (got < 14 + 20 + 8) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    vxlan = frame[14 + 9] == IPPROTO_UDP && frame[14 + 22] == (8472 >> 8) &&
            frame[14 + 23] == (8472 & 0xff);
  }
  close(sock);
  REQUIRE(vxlan);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame + 14);
  CHECK(rte_be_to_cpu_32(ip->dst_addr) == V4("192.168.0.2"));
  CHECK(ip->hdr_checksum != 0);                // filled in by the PMD, not left 0
  CHECK(rte_raw_cksum(ip, 20) == 0xffff);      // and right
  CHECK((*in)->pipeline(0).counters().encapsulated == 1);
  in->reset();
  rte_mempool_free(pool);
}
