// A one-node fixture for pipeline tests: the seed's cluster1 endpoints,
// policies from YAML, snapshots, and a way to push frames through Process.
#pragma once
#include <algorithm>

#include <rte_ether.h>
#include <rte_ip.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/pipeline.h"
#include "test/classifier/world.h"
#include "test/dataplane/packet_builder.h"

namespace meshgate::test {

using dataplane::Meta;
using dataplane::RcuCell;
using dataplane::RegisterPacketMeta;
using dataplane::Route;
using dataplane::BuildSnapshot;
using dataplane::Pipeline;
using dataplane::Snapshot;
using dataplane::SnapshotEndpoint;
using dataplane::SnapshotInput;
using dataplane::TxStage;

inline rte_mempool* Pool() {
  static rte_mempool* pool = [] {
    REQUIRE(RegisterPacketMeta().ok());
    return rte_pktmbuf_pool_create("pl_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  }();
  REQUIRE(pool != nullptr);
  return pool;
}

inline rte_ether_addr Mac(uint8_t last) { return {{0x02, 0, 0, 0, 0, last}}; }
inline const rte_ether_addr kRouter = {{0x02, 0xaa, 0, 0, 0, 1}};

// The policy many tests start from: myapp admits frontend, on any port.
inline const char* const kMyappFromFrontend = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]
)";

// The seed's cluster1: frontend, test, myapp on ports 0..2 (compile order).
struct Node {
  World w;
  std::map<std::string, std::string> ip = {
      {"frontend", "10.1.0.10"}, {"test", "10.1.0.11"}, {"myapp", "10.1.0.20"}};
  std::map<std::string, uint16_t> port;
  uint64_t generation = 0;
  std::unique_ptr<RcuCell<Snapshot>> qcell;  // the ipcache table's QSBR
  std::unique_ptr<dataplane::IpcacheTable> table;
  uint16_t uplink_port = 0xffff;  // set to give the node a way out
  std::vector<dataplane::ServiceSpec> services;

  Node() {
    Pool();  // registers the packet metadata before any Pipeline exists
    w.Add("frontend", {{"app", "frontend"}});
    w.Add("test", {{"app", "test"}});
    w.Add("myapp", {{"app", "myapp"}});
  }
  // `rotate`: the snapshot lists its endpoints from the second on, the
  // first last (each on the same port): every index changes, nothing else.
  std::unique_ptr<Snapshot> Build(uint16_t port_base = 0, bool rotate = false) {
    if (!table) {
      qcell = std::move(*RcuCell<Snapshot>::Create(4));
      auto t = dataplane::IpcacheTable::Create({1 << 12, 256}, qcell->qsbr());
      REQUIRE(t.ok());
      table = std::move(*t);
    }
    SnapshotInput in;
    in.generation = ++generation;
    in.policy = &w.Compiled();
    in.ipcache = table.get();
    in.router_mac = kRouter;
    in.uplink.port = uplink_port;
    in.services = services;
    in.uplink.mac = Mac(0xe0);
    in.uplink.gateway_mac = Mac(0xe1);
    uint16_t p = port_base;
    for (const auto* e : w.LocalInCompileOrder()) {
      SnapshotEndpoint se;
      se.port = p;
      se.mac = Mac(uint8_t(p + 1));
      se.identity = e->id;
      se.addrs.push_back(*identity::IpAddr::Parse(ip.at(e->spec.name)));
      port[e->spec.name] = p++;
      in.endpoints.push_back(se);
    }
    if (rotate) std::rotate(in.endpoints.begin(), in.endpoints.begin() + 1, in.endpoints.end());
    REQUIRE(dataplane::SyncIpcache(*table, w.ipcache, in.endpoints).ok());
    table->Reclaim();
    auto s = BuildSnapshot(in);
    REQUIRE(s.ok());
    return std::move(*s);
  }
};

inline Bytes TcpFrame(const std::string& src, const std::string& dst, uint16_t dport, uint8_t ttl = 64) {
  return Eth(0x0800, Ipv4(V4(src.c_str()), V4(dst.c_str()), 6, Tcp(40000, dport, 0x02), {}, 0, ttl));
}

struct Run {
  TxStage out;
  Pipeline* pl;
  void Send(const Snapshot& s, uint16_t port, const Bytes& frame) {
    rte_mbuf* m = ToMbuf(Pool(), frame);
    REQUIRE(m != nullptr);
    pl->Process(s, &m, 1, port, out);
  }
  // Takes the packets staged for `port` (the caller frees them).
  std::vector<rte_mbuf*> Take(uint16_t port) {
    std::vector<rte_mbuf*> v(out.pkts[port].begin(), out.pkts[port].begin() + out.n[port]);
    out.n[port] = 0;
    return v;
  }
};


// What became of one frame sent through a pipeline, for differential
// tests: the drop reason counted for it, or the port and bytes it left on.
struct Fate {
  int reason = -1;  // -1: delivered (or nowhere, when `out` is empty)
  int port = -1;
  Bytes out;
  bool operator==(const Fate&) const = default;
};

// The fate of the frame just processed: what `out` staged (taken and
// freed) and the reason whose count grew from `before` to `after`.
// `tagged`: the 802.1Q tag at byte 12 is left out of the bytes compared.
inline Fate TakeFate(TxStage& out, const dataplane::DropCounters& before,
                     const dataplane::DropCounters& after, bool tagged) {
  Fate f;
  for (uint16_t p = 0; p < dataplane::kMaxPorts; ++p) {
    for (uint16_t i = 0; i < out.n[p]; ++i) {
      rte_mbuf* o = out.pkts[p][i];
      const uint8_t* d = rte_pktmbuf_mtod(o, const uint8_t*);
      f.out.assign(d, d + rte_pktmbuf_data_len(o));
      f.port = p;
      rte_pktmbuf_free(o);
    }
    out.n[p] = 0;
  }
  if (tagged && f.out.size() >= 16) f.out.erase(f.out.begin() + 12, f.out.begin() + 16);
  for (size_t r = 0; r < std::size(after.by_reason); ++r) {
    if (after.by_reason[r] != before.by_reason[r]) f.reason = int(r);
  }
  return f;
}

}  // namespace meshgate::test
