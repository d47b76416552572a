// An instance: one cluster's dataplane. It owns its ports (opened from
// device strings), its worker lcores and their pipelines, the snapshot cell,
// the ipcache table, conntrack and the flow event ring. No process globals:
// several instances run in one process (the scenario runner does).
//
// Ports: a device string names an existing ethdev (e.g. one made with
// rte_eth_from_rings), or is probed: a PCI address ("0000:01:00.0") or a
// virtual device with its arguments ("net_tap0,iface=mg0",
// "net_memif0,role=client", "net_vhost0,iface=/tmp/sock", ...). Every port
// gets one RX and one TX queue per worker; worker w polls queue w of every
// port, so no queue is shared.
//
// Thread-safety: Create/Start/Stop and the control accessors from the
// control thread; workers run on their lcores between Start and Stop.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/conntrack.h"
#include "dataplane/flow_event.h"
#include "dataplane/ipcache_table.h"
#include "dataplane/pipeline.h"
#include "dataplane/rcu_cell.h"
#include "dataplane/snapshot.h"

struct rte_mempool;

namespace meshgate::dataplane {

struct PortSpec {
  std::string device;  // an ethdev name, a PCI address or a vdev string
  PortRole role = PortRole::kEndpoint;
};

// Whether a port's PMD copies each received frame into its mbuf on the
// polling core (kRxDataCopied), by the device's driver name and arguments:
// memif in copy mode (DPDK drivers/net/memif/rte_eth_memif.c, eth_memif_rx:
// rte_memcpy from the shared region; with zero-copy=yes it hands out the
// region's buffers, which the peer wrote), vhost (a copy from the guest's
// buffers in rte_vhost_dequeue_burst), tap (read(2) into the mbuf),
// af_packet and pcap (memcpy from the kernel's ring or the capture). NICs
// (DMA), rings and virtio-user (the backend's core wrote the data): no.
bool RxCopiesData(std::string_view driver, std::string_view devargs);

struct InstanceConfig {
  std::string name = "mg";         // unique per process: names pools and rings
  std::vector<PortSpec> ports;
  std::vector<unsigned> worker_lcores;  // empty: no lcores; drive with Poll()
  uint32_t conntrack_size = 1 << 16;
  uint32_t event_ring_size = 1 << 14;
  uint32_t affinity_size = 1 << 16;  // sessionAffinity ClientIP entries
  IpcacheTable::Config ipcache;
  uint16_t rx_desc = 512, tx_desc = 512;
  uint32_t mbufs = 8191;
  // A worker that found nothing to do in 256 polls in a row sleeps this long
  // before polling again (0 = busy-poll always). For hosts that share their
  // cores (a demo, CI); never per packet.
  uint32_t idle_sleep_us = 0;
};

class Instance {
 public:
  static absl::StatusOr<std::unique_ptr<Instance>> Create(const InstanceConfig& c);
  ~Instance();  // stops the workers, closes the ports it opened
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // The ethdev port id of config port `i`.
  uint16_t port_id(size_t i) const { return ports_[i]; }
  // PortOffload bits enabled on the i-th port (what its device offers).
  uint8_t port_offloads(size_t i) const { return offloads_[i]; }
  size_t num_ports() const { return ports_.size(); }
  size_t num_workers() const { return pipelines_.size(); }

  RcuCell<Snapshot>& snapshots() { return *cell_; }
  IpcacheTable& ipcache() { return *ipcache_; }
  Conntrack& conntrack() { return *ct_; }
  AffinityTable& affinity() { return *affinity_; }
  FlowEventRing& events() { return *events_; }
  rte_mempool* pool() { return pool_; }

  // Launches one worker per configured lcore (each polls its queue of every
  // port until Stop). Requires a published snapshot.
  absl::Status Start();
  void Stop();
  // Without lcores: one iteration of worker `w` on the calling thread.
  uint32_t Poll(size_t w = 0);

  // Control-thread housekeeping, called periodically (the daemon: every
  // 100 ms): removes expired connections and affinity entries, examining
  // at most `budget` slots of each table per call (never a full scan), and
  // frees retired snapshots and ipcache slots whose grace period is over.
  struct Maintenance {
    uint32_t connections = 0, affinities = 0;
  };
  Maintenance Maintain(uint64_t now_tsc, uint32_t budget);
  uint64_t collected_connections() const { return collected_.connections; }
  uint64_t collected_affinities() const { return collected_.affinities; }

  const Pipeline& pipeline(size_t w) const { return *pipelines_[w]; }
  uint64_t Dropped(DropReason r) const;  // over all workers
  uint64_t Dropped(DropReason r, size_t port_index) const;  // arrived on config port i
  uint64_t Forwarded() const;

 private:
  Instance() = default;
  static int WorkerMain(void* arg);
  struct Worker {
    Instance* inst;
    size_t index;
  };

  InstanceConfig config_;
  rte_mempool* pool_ = nullptr;
  std::vector<uint16_t> ports_;
  std::vector<bool> probed_;  // ports this instance probed (and so detaches)
  std::vector<uint8_t> offloads_;  // PortOffload bits, by port index
  std::unique_ptr<RcuCell<Snapshot>> cell_;
  std::unique_ptr<IpcacheTable> ipcache_;
  std::unique_ptr<Conntrack> ct_;
  std::unique_ptr<AffinityTable> affinity_;
  std::unique_ptr<FlowEventRing> events_;
  std::vector<std::unique_ptr<Pipeline>> pipelines_;
  std::vector<Worker> workers_;
  struct {
    uint64_t connections = 0, affinities = 0;
  } collected_;                     // cp only
  std::atomic<bool> stop_{false};  // dp: ro (relaxed), cp: rw
  bool running_ = false;
};

}  // namespace meshgate::dataplane
