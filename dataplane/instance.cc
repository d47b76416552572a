#include "dataplane/instance.h"

#include <rte_cycles.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <string_view>

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {

// Opens (or finds) the ethdev a device string names.
absl::StatusOr<std::pair<uint16_t, bool>> OpenPort(const std::string& device) {
  std::string name = device.substr(0, device.find(','));
  uint16_t id;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) == 0) return std::make_pair(id, false);
  int rc = rte_dev_probe(device.c_str());
  if (rc != 0) {
    return absl::NotFoundError(meshgate::StrCat("cannot open port \"", device,
                                                "\": ", rte_strerror(-rc)));
  }
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) {
    return absl::NotFoundError(meshgate::StrCat("device \"", device, "\" has no ethdev port"));
  }
  return std::make_pair(id, true);
}

}  // namespace

bool RxCopiesData(std::string_view driver, std::string_view devargs) {
  if (driver == "net_memif") return devargs.find("zero-copy=yes") == std::string_view::npos;
  return driver == "net_vhost" || driver == "net_tap" || driver == "net_af_packet" ||
         driver == "net_pcap";
}

absl::StatusOr<std::unique_ptr<Instance>> Instance::Create(const InstanceConfig& c) {
  if (auto st = RegisterPacketMeta(); !st.ok()) return st;  // idempotent, per process
  std::unique_ptr<Instance> in(new Instance());
  in->config_ = c;
  uint16_t nq = uint16_t(c.worker_lcores.empty() ? 1 : c.worker_lcores.size());
  auto cell = RcuCell<Snapshot>::Create(nq);
  if (!cell.ok()) return cell.status();
  in->cell_ = std::move(*cell);
  for (uint16_t w = 0; w < nq; ++w) {
    if (auto st = in->cell_->RegisterReader(w); !st.ok()) return st;
  }
  in->pool_ = rte_pktmbuf_pool_create(meshgate::StrCat(c.name, "_pool").c_str(), c.mbufs, 256, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (in->pool_ == nullptr) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat(c.name, ": mbuf pool: ", rte_strerror(rte_errno)));
  }
  for (const auto& spec : c.ports) {
    auto port = OpenPort(spec.device);
    if (!port.ok()) return port.status();
    auto [id, probed] = *port;
    in->ports_.push_back(id);
    in->probed_.push_back(probed);
    if (id >= kMaxPorts) {
      return absl::InvalidArgumentError(meshgate::StrCat("port ", spec.device, " has id ", id,
                                                         " >= ", kMaxPorts));
    }
    // Checksum offloads the device offers (most PCI NICs, net_tap):
    // IPv4 header checks on RX, header checksums of encapsulations on TX.
    // L4 checksums need no offload: NAT updates TCP's and UDP's incrementally
    // and computes SCTP's CRC32c in software (pipeline.cc, Rewrite).
    rte_eth_conf conf{};
    rte_eth_dev_info info{};
    uint8_t offloads = 0;
    if (rte_eth_dev_info_get(id, &info) == 0) {
      conf.rxmode.offloads = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
      conf.txmode.offloads = info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
      if (conf.rxmode.offloads != 0) offloads |= kRxIpv4Cksum;
      if (conf.txmode.offloads != 0) offloads |= kTxIpv4Cksum;
      const rte_devargs* da = info.device != nullptr ? rte_dev_devargs(info.device) : nullptr;
      if (RxCopiesData(info.driver_name != nullptr ? info.driver_name : "",
                       da != nullptr && da->args != nullptr ? da->args : "")) {
        offloads |= kRxDataCopied;
      }
    }
    in->offloads_.push_back(offloads);
    int rc = rte_eth_dev_configure(id, nq, nq, &conf);
    for (uint16_t q = 0; rc == 0 && q < nq; ++q) {
      rc = rte_eth_rx_queue_setup(id, q, c.rx_desc, rte_eth_dev_socket_id(id), nullptr, in->pool_);
      if (rc == 0) rc = rte_eth_tx_queue_setup(id, q, c.tx_desc, rte_eth_dev_socket_id(id), nullptr);
    }
    if (rc == 0) rc = rte_eth_dev_start(id);
    if (rc != 0) {
      return absl::InternalError(meshgate::StrCat("port \"", spec.device, "\": ", rte_strerror(-rc)));
    }
    rte_eth_promiscuous_enable(id);  // endpoints' and peers' MACs are not ours
  }
  auto table = IpcacheTable::Create(c.ipcache, in->cell_->qsbr());
  if (!table.ok()) return table.status();
  in->ipcache_ = std::move(*table);
  auto ct = Conntrack::Create(c.conntrack_size, in->cell_->qsbr());
  if (!ct.ok()) return ct.status();
  in->ct_ = std::move(*ct);
  auto ev = FlowEventRing::Create(c.event_ring_size);
  if (!ev.ok()) return ev.status();
  in->events_ = std::move(*ev);
  auto aff = AffinityTable::Create(c.affinity_size, in->cell_->qsbr());
  if (!aff.ok()) return aff.status();
  in->affinity_ = std::move(*aff);
  for (uint16_t w = 0; w < nq; ++w) {
    in->pipelines_.push_back(
        std::make_unique<Pipeline>(*in->cell_, w, in->ct_.get(), in->events_.get(),
                                   in->affinity_.get()));
    for (size_t p = 0; p < in->ports_.size(); ++p) {
      in->pipelines_.back()->SetPortOffloads(in->ports_[p], in->offloads_[p]);
    }
    in->workers_.push_back({in.get(), w});
  }
  return in;
}

Instance::~Instance() {
  Stop();
  for (size_t i = 0; i < ports_.size(); ++i) {
    rte_eth_dev_stop(ports_[i]);
    if (!probed_[i]) continue;  // ports made by others stay theirs
    rte_eth_dev_info info{};
    rte_device* dev = rte_eth_dev_info_get(ports_[i], &info) == 0 ? info.device : nullptr;
    rte_eth_dev_close(ports_[i]);
    if (dev != nullptr) rte_dev_remove(dev);  // the same device string can be opened again
  }
  pipelines_.clear();
  events_.reset();
  ct_.reset();
  ipcache_.reset();
  cell_.reset();
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

int Instance::WorkerMain(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  Instance& in = *w->inst;
  in.cell_->Online(uint32_t(w->index));
  const uint32_t sleep_us = in.config_.idle_sleep_us;
  uint32_t idle = 0;
  while (!in.stop_.load(std::memory_order_relaxed)) {
    uint32_t n = in.pipelines_[w->index]->PollOnce(in.ports_.data(), uint16_t(in.ports_.size()),
                                                   uint16_t(w->index));
    idle = n ? 0 : idle + 1;
    if (sleep_us != 0 && idle >= 256) rte_delay_us_sleep(sleep_us);  // quiescent already
  }
  in.cell_->Offline(uint32_t(w->index));
  return 0;
}

absl::Status Instance::Start() {
  if (running_) return absl::FailedPreconditionError("instance already running");
  if (cell_->current_for_writer() == nullptr) {
    return absl::FailedPreconditionError("no snapshot published yet");
  }
  stop_.store(false);
  for (size_t w = 0; w < config_.worker_lcores.size(); ++w) {
    unsigned lc = config_.worker_lcores[w];
    if (lc == rte_get_main_lcore() || !rte_lcore_is_enabled(lc)) {
      Stop();
      return absl::InvalidArgumentError(
          meshgate::StrCat("lcore ", lc, " is not an enabled worker lcore (EAL -l)"));
    }
    if (int rc = rte_eal_remote_launch(WorkerMain, &workers_[w], lc); rc != 0) {
      Stop();
      return absl::UnavailableError(meshgate::StrCat("lcore ", lc, " is busy"));
    }
  }
  running_ = true;
  return absl::OkStatus();
}

void Instance::Stop() {
  if (!running_) return;
  stop_.store(true);
  for (unsigned lc : config_.worker_lcores) rte_eal_wait_lcore(lc);
  running_ = false;
}

uint32_t Instance::Poll(size_t w) {
  cell_->Online(uint32_t(w));
  uint32_t n = pipelines_[w]->PollOnce(ports_.data(), uint16_t(ports_.size()), uint16_t(w));
  cell_->Offline(uint32_t(w));
  return n;
}

uint64_t Instance::Dropped(DropReason r) const {
  uint64_t n = 0;
  for (const auto& p : pipelines_) n += p->dropped(r);
  return n;
}

uint64_t Instance::Dropped(DropReason r, size_t i) const {
  uint16_t pid = ports_[i];
  if (pid >= kMaxPorts) return 0;
  uint64_t n = 0;
  for (const auto& p : pipelines_) n += p->counters().drops[pid].by_reason[uint8_t(r)];
  return n;
}

Instance::Maintenance Instance::Maintain(uint64_t now_tsc, uint32_t budget) {
  Maintenance m;
  m.connections = ct_->Collect(now_tsc, budget);
  m.affinities = affinity_->Collect(now_tsc, budget);
  collected_.connections += m.connections;
  collected_.affinities += m.affinities;
  cell_->Reclaim();
  ipcache_->Reclaim();
  return m;
}

uint64_t Instance::Forwarded() const {
  uint64_t n = 0;
  for (const auto& p : pipelines_) n += p->counters().forwarded;
  return n;
}

}  // namespace meshgate::dataplane
