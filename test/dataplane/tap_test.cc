// A real kernel interface on a net_tap port: the kernel resolves its
// neighbour through meshgate's ARP answer and its ping is forwarded to the
// other endpoint's port. Needs root and /dev/net/tun (as scripts/test has).
#include <catch2/catch.hpp>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ring.h>

#include <atomic>
#include <cctype>
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
}  // namespace

TEST_CASE("net_tap: the kernel ARPs for a peer, meshgate answers, the ping is forwarded",
          "[instance][tap][arp]") {
  const std::string ifname = "mgtap" + std::to_string(getpid() % 10000);
  rte_ring* rx = rte_ring_create("tapt_rx", 1024, SOCKET_ID_ANY, 0);
  rte_ring* tx = rte_ring_create("tapt_tx", 1024, SOCKET_ID_ANY, 0);
  REQUIRE((rx && tx));
  REQUIRE(rte_eth_from_rings("tapt", &rx, 1, &tx, 1, SOCKET_ID_ANY) >= 0);
  InstanceConfig cfg;
  cfg.name = "tapinst";
  cfg.ports = {{"net_tap_mgt0,iface=" + ifname}, {"net_ring_tapt"}};
  auto in = Instance::Create(cfg);
  REQUIRE(in.ok());
  // The kernel side of the tap is the frontend pod; myapp sits on the ring.
  std::ifstream mf("/sys/class/net/" + ifname + "/address");
  std::string mac_text;
  REQUIRE(std::getline(mf, mac_text));
  rte_ether_addr fe_mac;
  REQUIRE(rte_ether_unformat_addr(mac_text.c_str(), &fe_mac) == 0);
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
  rte_pktmbuf_free(echo);
  CHECK((*in)->pipeline(0).counters().arp_replies >= 1);
}
