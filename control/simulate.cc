#include "control/simulate.h"

#include <rte_byteorder.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_sctp.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <fmt/core.h>

#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "control/agent.h"
#include "control/feed.h"
#include "control/frames.h"
#include "control/json_quote.h"
#include "control/manifest.h"
#include "control/mesh_controller.h"
#include "control/scenario.h"
#include "dataplane/drop.h"
#include "dataplane/instance.h"
#include "identity/endpoint.h"
#include "identity/registry.h"
#include "identity/strutil.h"

namespace meshgate::control {

namespace {

using identity::Family;
using identity::IpAddr;

rte_ether_addr Mac(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {{0x02, a, 0, b, c, d}}; }


std::string ReasonName(dataplane::DropReason r) {
  switch (r) {
    case dataplane::DropReason::kPolicyDenied: return "policy-denied";
    case dataplane::DropReason::kPolicyDeny: return "policy-deny";
    case dataplane::DropReason::kServiceBackendNotFound: return "no-backend";
    default: break;
  }
  std::string s(dataplane::DropReasonEnumName(r));
  if (s.empty()) return StrCat("drop-", int(r));
  for (char& c : s) c = c == '_' ? '-' : char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}


struct SimPort {
  std::string name;  // net_ring name (the ethdev is "net_ring_" + name)
  rte_ring* rx = nullptr;  // the runner enqueues, the instance receives
  rte_ring* tx = nullptr;  // the instance transmits, the runner dequeues
  uint16_t port_id = 0;
  dataplane::PortRole role = dataplane::PortRole::kEndpoint;
  std::string endpoint;    // endpoint name for endpoint ports
};

struct Node {
  const ScenarioCluster* cl = nullptr;
  std::vector<SimPort> ports;
  std::map<std::string, uint16_t> ep_port;  // endpoint name -> port index
  int fabric = -1, uplink = -1;
  std::unique_ptr<dataplane::Instance> inst;
  std::unique_ptr<Agent> agent;
  FrameDecoder decoder;                   // the agent's end of the feed
  rte_ether_addr router{}, node_mac{}, uplink_mac{}, gateway_mac{};
};

// Where a packet enters or leaves the mesh.
struct Where {
  size_t node = 0;
  uint16_t port = 0;  // index into the node's ports
  bool operator==(const Where&) const = default;
};

struct Delivered {
  Where at;
  rte_mbuf* m;
  Pkt pkt;
};

struct ProbeResult {
  std::string got, served_by, backend, drop_reason, dropped_by, note;
  bool pass = false;
};

struct Flow {
  Where src;
  rte_ether_addr smac, dmac;
  Pkt pkt;
  std::string expect_src_name;
};

class Runner {
 public:
  Runner(const Scenario& s, const SimulateOptions& o, int seq) : s_(s), o_(o), seq_(seq) {}
  ~Runner();
  absl::Status Setup();
  absl::Status RunStepChanges(const ScenarioStep& st);
  ProbeResult RunProbe(const Probe& p);

 private:
  absl::Status Send(size_t n, std::string bytes);
  absl::Status SyncAll();
  absl::Status AddEndpoint(const ScenarioEndpoint& e);
  size_t NodeOf(const std::string& cluster) const;
  void Pump(std::vector<Delivered>& out);
  uint64_t Drops(size_t n, dataplane::DropReason r) const;
  uint64_t Audited(size_t n) const;
  std::string NameAt(const Where& w) const;  // "cluster/endpoint" or "external/x"

  const Scenario& s_;
  const SimulateOptions& o_;
  int seq_;
  rte_mempool* pool_ = nullptr;
  std::vector<Node> nodes_;
  std::unique_ptr<MeshController> ctl_;
  std::map<std::string, Flow> flows_;
  uint16_t next_sport_ = 32768;
};

Runner::~Runner() {
  for (auto& n : nodes_) {
    n.agent.reset();
    n.inst.reset();
    for (auto& p : n.ports) {
      if (p.port_id != RTE_MAX_ETHPORTS) {
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
      }
      for (rte_ring* r : {p.rx, p.tx}) {
        if (r == nullptr) continue;
        void* obj;
        while (rte_ring_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
        rte_ring_free(r);
      }
    }
  }
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

size_t Runner::NodeOf(const std::string& cluster) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].cl->name == cluster) return i;
  }
  return SIZE_MAX;
}

absl::Status Runner::Setup() {
  pool_ = rte_pktmbuf_pool_create(StrCat("sim", seq_, "_pool").c_str(), 1023, 0, 0,
                                  RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (pool_ == nullptr) return absl::ResourceExhaustedError("simulate: no memory for the probe pool");
  // Ports: one per endpoint that ever exists in the cluster, then the fabric
  // (with more than one cluster) and an uplink (when external hosts use it).
  nodes_.resize(s_.clusters.size());
  size_t total = 0;
  for (size_t i = 0; i < s_.clusters.size(); ++i) {
    Node& n = nodes_[i];
    n.cl = &s_.clusters[i];
    auto add_ep = [&](const ScenarioEndpoint& e) {
      if (e.cluster != n.cl->name || n.ep_port.contains(e.name)) return;
      n.ep_port[e.name] = uint16_t(n.ports.size());
      n.ports.push_back({.endpoint = e.name});
    };
    for (const auto& e : s_.endpoints) add_ep(e);
    for (const auto& st : s_.steps)
      for (const auto& e : st.add_endpoints) add_ep(e);
    if (s_.clusters.size() > 1) {
      n.fabric = int(n.ports.size());
      n.ports.push_back({.role = dataplane::PortRole::kFabric});
    }
    for (const auto& x : s_.external) {
      if (x.via == n.cl->name && n.uplink < 0) {
        n.uplink = int(n.ports.size());
        n.ports.push_back({.role = dataplane::PortRole::kUplink});
      }
    }
    total += n.ports.size();
  }
  size_t free_ports = RTE_MAX_ETHPORTS - rte_eth_dev_count_total();
  if (total > free_ports) {
    return absl::ResourceExhaustedError(StrCat(
        "simulate: the scenario needs ", total, " ports (one per endpoint, fabric and uplink); "
        "this DPDK build has RTE_MAX_ETHPORTS=", RTE_MAX_ETHPORTS, " and ", free_ports, " free"));
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    uint8_t cid = uint8_t(n.cl->id);
    n.router = Mac(0xaa, 0, 0, cid);
    n.node_mac = Mac(0xfa, 0, 0, cid);
    n.uplink_mac = Mac(0xee, 0, 0, cid);
    n.gateway_mac = Mac(0xef, 0, 0, cid);
    dataplane::InstanceConfig ic;
    ic.name = StrCat("sim", seq_, "c", cid);
    ic.conntrack_size = 1 << 12;
    ic.event_ring_size = 1 << 10;
    ic.ipcache = {1 << 12, 256};
    ic.mbufs = 2047;
    for (size_t p = 0; p < n.ports.size(); ++p) {
      SimPort& sp = n.ports[p];
      sp.port_id = RTE_MAX_ETHPORTS;
      sp.name = StrCat("s", seq_, "c", cid, "p", p);
      sp.rx = rte_ring_create((sp.name + "r").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      sp.tx = rte_ring_create((sp.name + "t").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (sp.rx == nullptr || sp.tx == nullptr) {
        return absl::ResourceExhaustedError(StrCat("simulate: cannot create rings for ", sp.name));
      }
      int id = rte_eth_from_rings(sp.name.c_str(), &sp.rx, 1, &sp.tx, 1, SOCKET_ID_ANY);
      if (id < 0) return absl::InternalError(StrCat("simulate: net_ring port ", sp.name, " failed"));
      sp.port_id = uint16_t(id);
      ic.ports.push_back({StrCat("net_ring_", sp.name), sp.role});
    }
    auto inst = dataplane::Instance::Create(ic);
    if (!inst.ok()) return inst.status();
    n.inst = std::move(*inst);
    AgentConfig ac;
    ac.cluster = n.cl->name;
    ac.cluster_id = n.cl->id;
    ac.router_mac = n.router;
    ac.fabric_port = n.fabric;
    ac.node_v4 = NodeV4(n.cl->id);
    ac.node_mac = n.node_mac;
    ac.uplink_port = n.uplink;
    ac.uplink_mac = n.uplink_mac;
    ac.gateway_mac = n.gateway_mac;
    n.agent = std::make_unique<Agent>(ac, *n.inst);
  }
  ctl_ = std::make_unique<MeshController>(s_.clusters, s_.namespaces);
  for (const auto& e : s_.endpoints) {
    if (auto st = AddEndpoint(e); !st.ok()) return st;
  }
  for (const auto& m : s_.manifests) {
    if (auto st = ctl_->ApplyManifest(m.cluster, m.yaml, s_.file, m.line_offset); !st.ok()) return st;
  }
  return SyncAll();
}

absl::Status Runner::AddEndpoint(const ScenarioEndpoint& e) {
  size_t n = NodeOf(e.cluster);
  uint16_t port = nodes_[n].ep_port.at(e.name);
  return ctl_->AddEndpoint(e, port, Mac(0, uint8_t(nodes_[n].cl->id), uint8_t(port >> 8), uint8_t(port)));
}

absl::Status Runner::Send(size_t n, std::string bytes) {
  Node& node = nodes_[n];
  node.decoder.Feed(bytes);
  mesh::v1::Update u;
  for (;;) {
    auto more = node.decoder.Next(u);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (auto st = node.agent->Apply(u); !st.ok()) {
      return absl::Status(st.code(), StrCat("cluster ", node.cl->name, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

// Brings every agent up to date through its feed, then commits.
absl::Status Runner::SyncAll() {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (auto st = Send(i, ctl_->Frames(n.cl->name)); !st.ok()) return st;
    if (auto st = n.agent->Commit(); !st.ok()) {
      return absl::Status(st.code(), StrCat("cluster ", n.cl->name, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Runner::RunStepChanges(const ScenarioStep& st) {
  bool changed = false;
  for (const auto& a : st.apply) {
    if (auto e = ctl_->ApplyManifest(a.cluster, a.yaml, s_.file, a.line_offset); !e.ok()) return e;
    changed = true;
  }
  for (const auto& d : st.del) {
    if (auto e = ctl_->DeleteManifest(d.cluster, d.kind, d.ns, d.name); !e.ok()) return e;
    changed = true;
  }
  for (const auto& k : st.remove_endpoints) {
    if (auto e = ctl_->RemoveEndpoint(k); !e.ok()) return absl::NotFoundError(StrCat("removeEndpoints: ", e.message()));
    changed = true;
  }
  for (const auto& e : st.add_endpoints) {
    if (auto x = AddEndpoint(e); !x.ok()) return x;
    changed = true;
  }
  return changed ? SyncAll() : absl::OkStatus();
}

void Runner::Pump(std::vector<Delivered>& out) {
  rte_mbuf* burst[64];
  for (int round = 0; round < 256; ++round) {
    uint32_t moved = 0;
    for (auto& n : nodes_) moved += n.inst->Poll(0);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Node& n = nodes_[i];
      for (uint16_t p = 0; p < n.ports.size(); ++p) {
        SimPort& sp = n.ports[p];
        unsigned k = rte_ring_dequeue_burst(sp.tx, reinterpret_cast<void**>(burst), 64, nullptr);
        moved += k;
        for (unsigned j = 0; j < k; ++j) {
          rte_mbuf* m = burst[j];
          if (sp.role == dataplane::PortRole::kFabric) {
            // The underlay: deliver by outer IPv4 destination.
            const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
            size_t to = SIZE_MAX;
            if (rte_pktmbuf_data_len(m) >= 34 && d[12] == 0x08 && d[13] == 0x00) {
              uint32_t dst = uint32_t(d[30]) << 24 | d[31] << 16 | d[32] << 8 | d[33];
              for (size_t t = 0; t < nodes_.size(); ++t) {
                if (NodeV4(nodes_[t].cl->id) == dst && nodes_[t].fabric >= 0) to = t;
              }
            }
            if (to == SIZE_MAX || rte_ring_enqueue(nodes_[to].ports[nodes_[to].fabric].rx, m) != 0) {
              if (o_.verbose) fmt::print(o_.err, "  underlay: frame from {} lost\n", n.cl->name);
              rte_pktmbuf_free(m);
            }
            continue;
          }
          auto pk = ParseFrame(m);
          if (!pk) {
            rte_pktmbuf_free(m);  // ARP/NDP answers and the like
            continue;
          }
          out.push_back({{i, p}, m, *pk});
        }
      }
    }
    if (moved == 0) return;
  }
}

uint64_t Runner::Drops(size_t n, dataplane::DropReason r) const { return nodes_[n].inst->Dropped(r); }
uint64_t Runner::Audited(size_t n) const {
  uint64_t a = 0;
  for (size_t w = 0; w < nodes_[n].inst->num_workers(); ++w) a += nodes_[n].inst->pipeline(w).counters().audited;
  return a;
}

std::string Runner::NameAt(const Where& w) const {
  const Node& n = nodes_[w.node];
  const SimPort& p = n.ports[w.port];
  if (p.role == dataplane::PortRole::kUplink) return "external via " + n.cl->name;
  return n.cl->name + "/" + p.endpoint;
}

ProbeResult Runner::RunProbe(const Probe& p) {
  ProbeResult r;
  auto fail = [&](std::string why) {
    r.got = "error";
    r.note = std::move(why);
    return r;
  };
  Family fam = p.family == 6 ? Family::kIpv6 : Family::kIpv4;
  if (p.to.starts_with("ip:")) {  // the address decides the family
    if (auto a = IpAddr::Parse(p.to.substr(3)); a.ok()) fam = a->family;
  }
  auto addr_of = [&](const ScenarioEndpoint& e) { return fam == Family::kIpv6 ? e.ipv6 : e.ipv4; };

  Flow flow;
  bool reuse = false;
  if (!p.flow.empty() && flows_.contains(p.flow)) {
    flow = flows_[p.flow];
    reuse = true;
  } else {
    // The source.
    if (p.from.starts_with("external/")) {
      const ScenarioExternal* x = nullptr;
      for (const auto& e : s_.external) {
        if ("external/" + e.name == p.from) x = &e;
      }
      if (!x) return fail("unknown source " + p.from);
      size_t n = NodeOf(x->via);
      auto a = fam == Family::kIpv6 ? x->ipv6 : x->ipv4;
      if (!a) return fail(StrCat(p.from, " has no ", fam == Family::kIpv6 ? "IPv6" : "IPv4", " address"));
      flow.src = {n, uint16_t(nodes_[n].uplink)};
      flow.smac = nodes_[n].gateway_mac;
      flow.dmac = nodes_[n].uplink_mac;
      flow.pkt.src = *a;
    } else {
      auto it = ctl_->endpoints().find(p.from);
      if (it == ctl_->endpoints().end()) return fail("source " + p.from + " is not a current endpoint");
      auto a = addr_of(it->second.spec);
      if (!a) return fail(StrCat(p.from, " has no ", fam == Family::kIpv6 ? "IPv6" : "IPv4", " address"));
      size_t n = NodeOf(it->second.spec.cluster);
      uint16_t port = nodes_[n].ep_port.at(it->second.spec.name);
      flow.src = {n, port};
      flow.smac = Mac(0, uint8_t(nodes_[n].cl->id), uint8_t(port >> 8), uint8_t(port));
      flow.dmac = nodes_[n].router;
      flow.pkt.src = *a;
    }
    // The destination address.
    const std::string& src_cluster = nodes_[flow.src.node].cl->name;
    if (p.to.starts_with("service:")) {
      std::string ref = p.to.substr(8);
      auto slash = ref.find('/');
      std::string ns = slash == std::string::npos ? "default" : ref.substr(0, slash);
      std::string name = slash == std::string::npos ? ref : ref.substr(slash + 1);
      const lb::Service* svc = nullptr;
      for (const auto& s : ctl_->services(src_cluster)) {
        if (s.ns == ns && s.name == name) svc = &s;
      }
      if (!svc) return fail(StrCat("no Service ", ns, "/", name, " in cluster ", src_cluster));
      std::optional<IpAddr> vip;
      for (const auto& f : svc->frontends) {
        if (f.family == fam && !vip) vip = f;
      }
      if (!vip) return fail(StrCat("Service ", ns, "/", name, " has no ", p.family == 6 ? "IPv6" : "IPv4", " address in ", src_cluster));
      flow.pkt.dst = *vip;
    } else if (p.to.starts_with("ip:")) {
      auto a = IpAddr::Parse(p.to.substr(3));
      if (!a.ok()) return fail(StrCat("bad address in ", p.to));
      flow.pkt.dst = *a;
    } else if (p.to.starts_with("external/")) {
      for (const auto& e : s_.external) {
        if ("external/" + e.name == p.to) {
          auto a = fam == Family::kIpv6 ? e.ipv6 : e.ipv4;
          if (!a) return fail(p.to + " has no address of the probe's family");
          flow.pkt.dst = *a;
        }
      }
      if (flow.pkt.dst.family != fam || flow.pkt.dst == IpAddr()) return fail("unknown destination " + p.to);
    } else {
      auto it = ctl_->endpoints().find(p.to);
      if (it == ctl_->endpoints().end()) return fail("destination " + p.to + " is not a current endpoint");
      auto a = addr_of(it->second.spec);
      if (!a) return fail(StrCat(p.to, " has no ", p.family == 6 ? "IPv6" : "IPv4", " address"));
      flow.pkt.dst = *a;
    }
    flow.pkt.proto = ProtoNumber(p.protocol);
    if (IsIcmp(flow.pkt.proto)) {
      flow.pkt.dport = p.icmp_type.value_or(flow.pkt.proto == IPPROTO_ICMP ? 8 : 128);
    } else {
      flow.pkt.dport = p.port;
    }
    flow.pkt.sport = next_sport_++;
    if (next_sport_ < 32768) next_sport_ = 32768;
    if (!p.flow.empty()) flows_[p.flow] = flow;
  }
  Pkt fwd = flow.pkt;
  if (fwd.proto == IPPROTO_TCP) fwd.tcp_flags = reuse ? (RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG) : RTE_TCP_SYN_FLAG;
  if (fwd.proto == IPPROTO_SCTP) fwd.tcp_flags = reuse ? 0 : 1;  // DATA : INIT

  // Counters before, to tell who dropped or audited.
  const auto& reasons = dataplane::AllDropReasons();
  auto drops_now = [&]() {
    std::vector<uint64_t> v;
    for (size_t n = 0; n < nodes_.size(); ++n)
      for (auto reason : reasons) v.push_back(Drops(n, reason));
    return v;
  };
  auto audited_now = [&]() {
    std::vector<uint64_t> v;
    for (size_t n = 0; n < nodes_.size(); ++n) v.push_back(Audited(n));
    return v;
  };
  auto blame = [&](const std::vector<uint64_t>& before) {
    auto after = drops_now();
    for (size_t n = 0; n < nodes_.size(); ++n) {
      for (size_t k = 0; k < reasons.size(); ++k) {
        size_t i = n * reasons.size() + k;
        if (after[i] > before[i]) {
          r.dropped_by = nodes_[n].cl->name;
          r.drop_reason = ReasonName(reasons[k]);
          return;
        }
      }
    }
  };
  auto inject = [&](const Where& at, const rte_ether_addr& smac, const rte_ether_addr& dmac,
                    const Pkt& pk) {
    rte_mbuf* m = BuildFrame(pool_, smac, dmac, pk);
    if (m == nullptr) return false;
    if (rte_ring_enqueue(nodes_[at.node].ports[at.port].rx, m) != 0) {
      rte_pktmbuf_free(m);
      return false;
    }
    return true;
  };
  std::vector<Delivered> seen;
  auto free_seen = [&]() {
    for (auto& d : seen) rte_pktmbuf_free(d.m);
    seen.clear();
  };

  auto drops0 = drops_now();
  auto audit0 = audited_now();
  if (!inject(flow.src, flow.smac, flow.dmac, fwd)) return fail("could not inject the probe");
  Pump(seen);
  const Delivered* got = nullptr;
  for (const auto& d : seen) {
    if (d.pkt.proto == fwd.proto && d.pkt.sport == fwd.sport && d.pkt.src == fwd.src &&
        (!IsIcmp(fwd.proto) || d.pkt.dport == fwd.dport) && !(d.at == flow.src)) {
      got = &d;
      break;
    }
  }
  if (got == nullptr) {
    r.got = "deny";
    blame(drops0);
    free_seen();
    return r;
  }
  const Node& dn = nodes_[got->at.node];
  const SimPort& dport = dn.ports[got->at.port];
  if (dport.role == dataplane::PortRole::kEndpoint) {
    r.backend = dn.cl->name + "/" + dport.endpoint;
    r.served_by = dn.cl->name;
  } else {
    r.served_by = dn.cl->name;
  }
  // Was it meant for where it arrived? An endpoint or ip: target must be
  // reached at that address; a service at one of its backends.
  if (!p.to.starts_with("service:") && !(got->pkt.dst == fwd.dst)) {
    r.got = "misdelivered";
    r.note = StrCat("arrived at ", NameAt(got->at), " addressed to ", got->pkt.dst.ToString());
    free_seen();
    return r;
  }
  auto audit1 = audited_now();
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (audit1[n] > audit0[n] && r.dropped_by.empty()) r.dropped_by = nodes_[n].cl->name;
  }
  bool audited = !r.dropped_by.empty();

  // The answer from where it arrived, addresses reversed.
  int reply_type = IsIcmp(fwd.proto) ? IcmpReplyType(fwd.proto, uint8_t(fwd.dport)) : 0;
  if (reply_type >= 0) {
    Pkt back;
    back.src = got->pkt.dst;
    back.dst = got->pkt.src;
    back.proto = fwd.proto;
    if (IsIcmp(fwd.proto)) {
      back.sport = got->pkt.sport;
      back.dport = uint16_t(reply_type);
    } else {
      back.sport = got->pkt.dport;
      back.dport = got->pkt.sport;
    }
    back.tcp_flags = reuse ? RTE_TCP_ACK_FLAG : (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
    if (fwd.proto == IPPROTO_SCTP) back.tcp_flags = reuse ? 3 : 2;  // SACK : INIT ACK
    rte_ether_addr smac, dmac;
    if (dport.role == dataplane::PortRole::kEndpoint) {
      smac = Mac(0, uint8_t(dn.cl->id), uint8_t(got->at.port >> 8), uint8_t(got->at.port));
      dmac = dn.router;
    } else {
      smac = dn.gateway_mac;
      dmac = dn.uplink_mac;
    }
    Where at = got->at;
    free_seen();
    auto drops1 = drops_now();
    if (!inject(at, smac, dmac, back)) return fail("could not inject the answer");
    Pump(seen);
    bool ok = false;
    for (const auto& d : seen) {
      ok = ok || (d.at == flow.src && d.pkt.proto == fwd.proto && d.pkt.src == fwd.dst &&
                  d.pkt.dst == fwd.src &&
                  (IsIcmp(fwd.proto) ? d.pkt.sport == fwd.sport && d.pkt.dport == back.dport
                                     : d.pkt.sport == fwd.dport && d.pkt.dport == fwd.sport));
    }
    if (!ok) {
      r.got = "reply-lost";
      r.dropped_by.clear();
      blame(drops1);
      r.note = r.dropped_by.empty() ? "the answer never reached the source with the addresses reversed"
                                    : StrCat("the answer was dropped by ", r.dropped_by, " (", r.drop_reason, ")");
      free_seen();
      return r;
    }
  }
  free_seen();
  r.got = audited ? "audit" : "allow";
  return r;
}

void Print(const SimulateOptions& o, const std::string& step, const Probe& p, const ProbeResult& r) {
  if (o.json) {
    auto opt = [](const std::string& s) { return s.empty() ? std::string("null") : JsonQuote(s); };
    fmt::print(o.out,
               "{{\"step\":{},\"from\":{},\"to\":{},\"port\":{},\"protocol\":{},\"expect\":{},"
               "\"got\":{},\"servedBy\":{},\"backend\":{},\"dropReason\":{},\"droppedBy\":{},"
               "\"pass\":{}{}}}\n",
               JsonQuote(step), JsonQuote(p.from), JsonQuote(p.to), p.port,
               JsonQuote(p.protocol), JsonQuote(p.expect), JsonQuote(r.got), opt(r.served_by),
               opt(r.backend), opt(r.drop_reason), opt(r.dropped_by), r.pass ? "true" : "false",
               r.note.empty() ? "" : ",\"note\":" + JsonQuote(r.note));
    return;
  }
  std::string what = IsIcmp(ProtoNumber(p.protocol))
                         ? StrCat(p.protocol, p.icmp_type ? StrCat(" type ", int(*p.icmp_type)) : "")
                         : StrCat(p.protocol, "/", p.port);
  std::string detail;
  if (r.got == "allow" || r.got == "audit") {
    if (!r.backend.empty()) detail = StrCat(" via ", r.backend);
    else if (!r.served_by.empty()) detail = StrCat(" via ", r.served_by, "'s uplink");
    if (r.got == "audit") StrAppend(&detail, " (audited by ", r.dropped_by, ")");
  } else if (r.got != "error") {
    if (!r.dropped_by.empty()) detail = StrCat(" (", r.drop_reason, " at ", r.dropped_by, ")");
  }
  std::string want = p.expect;
  if (!p.served_by.empty()) StrAppend(&want, " servedBy=", p.served_by);
  if (!p.backend.empty()) StrAppend(&want, " backend=", p.backend);
  if (!p.drop_reason.empty()) StrAppend(&want, " dropReason=", p.drop_reason);
  if (!p.dropped_by.empty()) StrAppend(&want, " droppedBy=", p.dropped_by);
  fmt::print(o.out, "{} [{}] {} -> {} {}{}: {}{}{}{}\n", r.pass ? "PASS" : "FAIL", step, p.from,
             p.to, what, p.family == 6 ? " (IPv6)" : "", r.got, detail,
             r.pass ? "" : StrCat("; expected ", want), r.note.empty() ? "" : StrCat(" [", r.note, "]"));
}

bool Check(const Probe& p, const ProbeResult& r) {
  if (r.got != p.expect) return false;
  if (!p.served_by.empty() && p.served_by != r.served_by) return false;
  if (!p.backend.empty() && p.backend != r.backend) return false;
  if (!p.drop_reason.empty() && p.drop_reason != r.drop_reason) return false;
  if (!p.dropped_by.empty() && p.dropped_by != r.dropped_by) return false;
  return true;
}

int CountProbes(const Scenario& s) {
  int n = 0;
  for (const auto& st : s.steps) n += int(st.probes.size());
  return n;
}

}  // namespace

SimulateTotals Simulate(const std::vector<std::string>& files, const SimulateOptions& o) {
  SimulateTotals t;
  int seq = 0;
  for (const auto& file : files) {
    std::ifstream in(file);
    if (!in) {
      fmt::print(o.err, "{}: cannot read\n", file);
      ++t.errors;
      ++t.failed;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    Scenario s;
    std::vector<Diagnostic> diags, warnings;
    bool ok = ParseScenario(ss.str(), file, s, diags, warnings);
    for (const auto& w : warnings) fmt::print(o.err, "{}:{}: warning: {}\n", w.file, w.line, w.message);
    if (!ok) {
      for (const auto& d : diags) fmt::print(o.err, "{}\n", d.ToString());
      ++t.errors;
      t.failed += std::max(1, CountProbes(s));
      continue;
    }
    Runner run(s, o, seq++);
    if (auto st = run.Setup(); !st.ok()) {
      fmt::print(o.err, "{}: {}\n", file, std::string(st.message()));
      ++t.errors;
      t.failed += std::max(1, CountProbes(s));
      continue;
    }
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const auto& st = s.steps[i];
      if (auto e = run.RunStepChanges(st); !e.ok()) {
        fmt::print(o.err, "{}: step \"{}\": {}\n", file, st.name, std::string(e.message()));
        ++t.errors;
        for (size_t j = i; j < s.steps.size(); ++j) t.failed += int(s.steps[j].probes.size());
        break;
      }
      for (const auto& p : st.probes) {
        ProbeResult r = run.RunProbe(p);
        r.pass = Check(p, r);
        Print(o, st.name, p, r);
        (r.pass ? t.passed : t.failed) += 1;
      }
    }
  }
  return t;
}

}  // namespace meshgate::control
