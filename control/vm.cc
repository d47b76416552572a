#include "control/vm.h"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <fmt/core.h>

#include <atomic>
#include <csignal>
#include <cstring>

#include "control/frames.h"
#include "dataplane/eal.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace {

constexpr const char* kVmUsage = R"(meshgate vm: a VM stand-in on a vhost-user socket (net_virtio_user)

Usage: meshgate vm --socket PATH --mac MAC --ip ADDR [options]
  --server              virtio_user is the vhost-user server (meshgate in client mode)
  --queues N            queue pairs (default 1)
  --serve               answer TCP SYN (SYN-ACK), UDP (echo) and ICMP echo requests
  --probe ADDR:PORT     send new connections to ADDR:PORT (ICMP: ADDR alone)
  --protocol P          TCP | UDP | ICMP (default TCP)
  --count N             connections to try (default 3)
  --expect allow|deny   exit 1 unless every probe was answered (allow) or none (deny)
  --seconds S           how long to serve (default: until SIGINT/SIGTERM) or to
                        wait for the port to come up and answers (default 10)
)";

std::atomic<bool> g_stop{false};

int VmFail(const std::string& m) {
  fmt::print(stderr, "meshgate vm: {}\n", m);
  return 2;
}

}  // namespace

int RunVm(const std::vector<std::string>& args) {
  std::string sock, mac_s, ip_s, probe, proto_s = "TCP", expect;
  bool server = false, serve = false;
  int count = 3, queues = 1;
  double seconds = -1;
  for (size_t i = 0; i < args.size(); ++i) {
    auto val = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    const std::string& a = args[i];
    if (a == "--socket") sock = val();
    else if (a == "--mac") mac_s = val();
    else if (a == "--ip") ip_s = val();
    else if (a == "--server") server = true;
    else if (a == "--serve") serve = true;
    else if (a == "--probe") probe = val();
    else if (a == "--protocol") proto_s = val();
    else if (a == "--count") count = std::atoi(val().c_str());
    else if (a == "--queues") queues = std::atoi(val().c_str());
    else if (a == "--expect") expect = val();
    else if (a == "--seconds") seconds = std::atof(val().c_str());
    else if (a == "-h" || a == "--help") {
      std::fputs(kVmUsage, stdout);
      return 0;
    } else {
      return VmFail("unknown option " + a);
    }
  }
  rte_ether_addr mac{};
  auto ip = identity::IpAddr::Parse(ip_s);
  if (sock.empty() || rte_ether_unformat_addr(mac_s.c_str(), &mac) != 0 || !ip.ok() ||
      ip->family != identity::Family::kIpv4) {
    return VmFail("--socket, --mac and an IPv4 --ip are required (see --help)");
  }
  if (!expect.empty() && expect != "allow" && expect != "deny") return VmFail("--expect allow|deny");
  Pkt target;
  uint8_t proto = ProtoNumber(proto_s);
  if (!probe.empty()) {
    std::string host = probe;
    uint16_t port = 0;
    if (auto c = probe.rfind(':'); c != std::string::npos && !IsIcmp(proto)) {
      host = probe.substr(0, c);
      port = uint16_t(std::atoi(probe.substr(c + 1).c_str()));
    }
    auto d = identity::IpAddr::Parse(host);
    if (!d.ok() || d->family != identity::Family::kIpv4) return VmFail("--probe ADDR:PORT with an IPv4 address");
    target.src = *ip;
    target.dst = *d;
    target.proto = proto;
    target.dport = IsIcmp(proto) ? 8 : port;
  }
  if (seconds < 0) seconds = serve && probe.empty() ? 1e9 : 10;

  dataplane::EalOptions eal;
  eal.name = "meshgate-vm";
  eal.extra = {"--no-pci", "-l", "0", "--log-level=*:error",
               StrCat("--vdev=net_virtio_user0,path=", sock, ",mac=", mac_s, ",queues=", queues,
                      server ? ",server=1" : "")};
  if (auto st = dataplane::InitEal(eal); !st.ok()) return VmFail(std::string(st.message()));
  if (rte_eth_dev_count_avail() == 0) return VmFail("the virtio_user port did not come up (is meshgate's vhost-user socket there?)");
  uint16_t port = 0;
  rte_mempool* pool = rte_pktmbuf_pool_create("vm_pool", 4095, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
  if (pool == nullptr) return VmFail("no memory for mbufs");
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port, uint16_t(queues), uint16_t(queues), &conf) != 0) return VmFail("configure failed");
  for (int q = 0; q < queues; ++q) {
    if (rte_eth_rx_queue_setup(port, uint16_t(q), 256, rte_eth_dev_socket_id(port), nullptr, pool) != 0 ||
        rte_eth_tx_queue_setup(port, uint16_t(q), 256, rte_eth_dev_socket_id(port), nullptr) != 0) {
      return VmFail("queue setup failed");
    }
  }
  if (rte_eth_dev_start(port) != 0) return VmFail("start failed");
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });

  const uint64_t hz = rte_get_tsc_hz();
  const uint64_t end = rte_get_tsc_cycles() + uint64_t(seconds * double(hz));
  rte_ether_addr gw{};
  bool have_gw = false;
  uint64_t next_arp = 0, next_probe = 0;
  int sent = 0, answered = 0, served = 0;
  std::string answered_from;
  uint16_t sport = 40000;
  // With several queue pairs, probes go out on the queues in turn (as a
  // multi-queue guest spreads its flows) and answers leave on the queue
  // their request came in on; every queue is received from.
  std::vector<uint64_t> tx_per_queue(size_t(queues), 0), rx_per_queue(size_t(queues), 0);
  auto tx = [&](rte_mbuf* m, uint16_t q = 0) {
    if (m == nullptr) return;
    if (rte_eth_tx_burst(port, q, &m, 1) != 1) {
      rte_pktmbuf_free(m);
    } else {
      ++tx_per_queue[q];
    }
  };
  while (!g_stop && rte_get_tsc_cycles() < end) {
    uint64_t now = rte_get_tsc_cycles();
    if (!have_gw && now >= next_arp) {  // ARP for the gateway: meshgate answers with its router MAC
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      auto* eth = m != nullptr ? reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(
                                     m, sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)))
                               : nullptr;
      if (m != nullptr && eth == nullptr) rte_pktmbuf_free(m);
      if (eth != nullptr) {
        std::memset(eth, 0, sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr));
        eth->src_addr = mac;
        std::memset(&eth->dst_addr, 0xff, 6);
        eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
        auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
        arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
        arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
        arp->arp_hlen = 6;
        arp->arp_plen = 4;
        arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
        arp->arp_data.arp_sha = mac;
        arp->arp_data.arp_sip = rte_cpu_to_be_32(ip->v4_host_order());
        arp->arp_data.arp_tip = rte_cpu_to_be_32(0xa9fe0101);  // 169.254.1.1
        tx(m);
      }
      next_arp = now + hz / 5;
    }
    if (have_gw && !probe.empty() && sent < count && now >= next_probe) {
      Pkt p = target;
      p.sport = IsIcmp(proto) ? uint16_t(0x1000 + sent) : sport++;
      p.tcp_flags = RTE_TCP_SYN_FLAG;
      tx(BuildFrame(pool, mac, gw, p), uint16_t(sent % queues));
      ++sent;
      next_probe = now + hz / 10;
    }
    for (uint16_t q = 0; q < uint16_t(queues); ++q) {
    rte_mbuf* rx[32];
    uint16_t n = rte_eth_rx_burst(port, q, rx, 32);
    rx_per_queue[q] += n;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = rx[i];
      auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
      if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
        auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
        if (arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) && !have_gw) {
          gw = arp->arp_data.arp_sha;
          have_gw = true;
        }
        rte_pktmbuf_free(m);
        continue;
      }
      auto pk = ParseFrame(m);
      rte_ether_addr from_mac = eth->src_addr;
      rte_pktmbuf_free(m);
      if (!pk || !(pk->dst == *ip)) continue;
      bool request = IsIcmp(pk->proto) ? IcmpReplyType(pk->proto, uint8_t(pk->dport)) >= 0
                     : pk->proto == IPPROTO_TCP ? pk->tcp_flags == RTE_TCP_SYN_FLAG
                                                : !(!probe.empty() && pk->src == target.dst);
      if (serve && request) {
        Pkt back;
        back.src = pk->dst;
        back.dst = pk->src;
        back.proto = pk->proto;
        if (IsIcmp(pk->proto)) {
          back.sport = pk->sport;
          back.dport = uint16_t(IcmpReplyType(pk->proto, uint8_t(pk->dport)));
        } else {
          back.sport = pk->dport;
          back.dport = pk->sport;
        }
        back.tcp_flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
        tx(BuildFrame(pool, mac, from_mac, back), q);
        ++served;
        continue;
      }
      // An answer to one of our probes: from the address we probed, to our port.
      if (!probe.empty() && pk->proto == proto && pk->src == target.dst &&
          (IsIcmp(proto) ? pk->dport == 0 : pk->sport == target.dport)) {
        ++answered;
        answered_from = StrCat(pk->src.ToString(), IsIcmp(proto) ? "" : StrCat(":", pk->sport));
      }
    }
    }
    if (!probe.empty() && sent == count && answered == count) break;
    if (!probe.empty() && sent == count && now > next_probe + hz) break;  // a second for late answers
  }
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
  std::string per_queue;
  if (queues > 1) {
    for (int q = 0; q < queues; ++q) {
      StrAppend(&per_queue, q ? ", " : "; queues: ", "q", q, " tx ", tx_per_queue[size_t(q)], " rx ",
                rx_per_queue[size_t(q)]);
    }
  }
  if (!probe.empty()) {
    fmt::print("vm {}: probe {} {}: {} sent, {} answered{}{}\n", ip->ToString(), probe, proto_s, sent,
               answered, answered_from.empty() ? "" : " (from " + answered_from + ")", per_queue);
    if (!have_gw) fmt::print(stderr, "meshgate vm: no ARP answer from the gateway (is the port attached?)\n");
    if (expect == "allow" && (answered != count || sent != count)) return 1;
    if (expect == "deny" && (answered != 0 || !have_gw || sent != count)) return 1;
  }
  if (serve) fmt::print("vm {}: served {}{}\n", ip->ToString(), served, per_queue);
  return 0;
}

}  // namespace meshgate::control
