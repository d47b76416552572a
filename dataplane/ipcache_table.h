// The ipcache as workers see it: prefix -> Route (identity, where), longest
// prefix wins. Long-lived and updated in place, so an ipcache change (an
// endpoint appears, an identity changes) never rebuilds a policy snapshot or
// the ACL (architecture.md invariant 1).
//
// Host routes (/32, /128: every endpoint and node address, most of the
// ipcache) live in an exact-match index (slot_index.h) consulted first: an
// exact host route is always the longest match. Adding one is O(1); in
// rte_lpm it cost O(routes of that depth) (a linear rule list per depth:
// 100k host routes took 4-8 s to load, docs/design/snapshots.md).
// Other prefixes go to the LPM tables:
// IPv4: rte_lpm with RCU-safe tbl8 reclamation (rte_lpm_rcu_qsbr_add) on
// the workers' QSBR.
// IPv6: rte_lpm6 has no RCU support in DPDK 22.11, so the IPv6 prefix table
// is rebuilt when a prefix changes and swapped with one pointer store
// (copy-on-write), the old one freed after a grace period.
// Every update writes a fresh route slot, then switches the prefix to it
// (one index reference store, or rte_lpm_add's single atomic entry
// writes); the old slot is freed after a grace period. A worker sees the
// old route or the new one, never a torn one.
//
// Thread-safety: lookups from any worker; updates and Reclaim from one
// control thread.
#pragma once

#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "identity/address.h"
#include "dataplane/slot_index.h"
#include "identity/numeric.h"

namespace meshgate::dataplane {

inline constexpr uint16_t kNoEndpoint = 0xffff;
inline constexpr uint32_t kOutsideRoute = 0xffffffff;  // no entry covers the address

// An ipcache entry as the fast path sees it.
struct Route {
  enum Kind : uint8_t { kLocal, kRemote, kOutside };
  uint32_t identity = identity::reserved::kWorld;
  uint16_t port = kNoEndpoint;  // kLocal: the endpoint's port
  Kind kind = kOutside;
  uint32_t tunnel_v4 = 0;       // kRemote: the node to encapsulate to (host order)
  bool operator==(const Route&) const = default;
};

class IpcacheTable {
 public:
  // The most routes a table holds (Create refuses more): slots are LPM
  // next hops, 21 bits in rte_lpm6.
  static constexpr uint32_t kMaxRoutes = 1u << 21;
  struct Config {
    uint32_t max_routes = 1 << 20;
    uint32_t v4_tbl8s = 1 << 14;  // one per /24 holding longer prefixes
  };
  static absl::StatusOr<std::unique_ptr<IpcacheTable>> Create(const Config& c, rte_rcu_qsbr* qsbr);
  ~IpcacheTable();
  IpcacheTable(const IpcacheTable&) = delete;
  IpcacheTable& operator=(const IpcacheTable&) = delete;

  // --- control ---
  absl::Status Upsert(const identity::Prefix& p, const Route& r);
  absl::Status Remove(const identity::Prefix& p);
  // Frees retired route slots and IPv6 tables whose grace period is over.
  void Reclaim();
  size_t size() const { return slot_of_.size(); }
  std::vector<identity::Prefix> Prefixes() const;

  // --- workers ---
  uint32_t Lookup4(uint32_t ip_host_order) const noexcept {
    uint32_t ref = hosts_.Find(HostHash4(ip_host_order), [&](uint32_t r) {
      const Slot& s = slots_[r - 1];
      return s.family == 4 && s.v4 == ip_host_order;
    });
    if (ref != 0) return ref - 1;
    uint32_t nh;
    return rte_lpm_lookup(lpm4_, ip_host_order, &nh) == 0 ? nh : kOutsideRoute;
  }
  uint32_t Lookup6(const uint8_t* ip) const noexcept {
    uint32_t ref = hosts_.Find(HostHash6(ip), [&](uint32_t r) {
      const Slot& s = slots_[r - 1];
      return s.family == 6 && std::memcmp(s.v6, ip, 16) == 0;
    });
    if (ref != 0) return ref - 1;
    uint32_t nh;
    rte_lpm6* t = lpm6_.load(std::memory_order_acquire);
    return rte_lpm6_lookup(t, ip, &nh) == 0 ? nh : kOutsideRoute;
  }
  // Hints a lookup's data into the cache, in two steps a burst can
  // interleave: the host index bucket, then (once it has arrived) the route
  // slot its first candidate names.
  void PrefetchBucket4(uint32_t ip_host_order) const noexcept {
    hosts_.Prefetch(HostHash4(ip_host_order));
  }
  void PrefetchSlot4(uint32_t ip_host_order) const noexcept {
    if (uint32_t ref = hosts_.FirstCandidate(HostHash4(ip_host_order))) {
      rte_prefetch0(&slots_[ref - 1]);
    }
  }
  const Route& At(uint32_t slot) const noexcept {
    return slot < capacity_ ? slots_[slot].route : outside_;
  }
  // Bumped (release) after every change. A result derived from lookups made
  // after reading version v is current until the version moves on: the
  // conntrack verdict cache (conntrack.h) is stamped with it.
  uint32_t version() const noexcept { return version_.load(std::memory_order_acquire); }

 private:
  // A route and, for a host route, its address (the index's key).
  struct alignas(32) Slot {  // two per cache line, never straddling one
    Route route;
    uint8_t family = 0;  // 4 or 6 for a host route in `hosts_`, else 0
    union {
      uint32_t v4;  // host order
      uint8_t v6[16] = {};
    };
  };
  static_assert(sizeof(Slot) == 32);
  static SlotIndex::Hash HostHash4(uint32_t ip) {
    return SlotIndex::Mix(SlotIndex::Crc4(ip, 0x9e3779b9u));
  }
  static SlotIndex::Hash HostHash6(const uint8_t* ip) {
    uint64_t w[2];
    std::memcpy(w, ip, 16);
    return SlotIndex::Mix(SlotIndex::Crc8(w[1], SlotIndex::Crc8(w[0], 0x9e3779b9u)));
  }
  static bool IsHost(const identity::Prefix& p) {
    return p.len == (p.addr.family == identity::Family::kIpv4 ? 32 : 128);
  }
  static SlotIndex::Hash HostHash(const identity::Prefix& p) {
    return p.addr.family == identity::Family::kIpv4 ? HostHash4(p.addr.v4_host_order())
                                                    : HostHash6(p.addr.bytes.data());
  }
  IpcacheTable() = default;
  absl::Status RebuildV6();
  uint32_t AllocSlot();

  rte_rcu_qsbr* qsbr_ = nullptr;
  rte_lpm* lpm4_ = nullptr;
  std::atomic<rte_lpm6*> lpm6_{nullptr};  // dp: acquire; cp: release store
  std::unique_ptr<Slot[]> slots_;         // dp: ro; cp: writes unpublished slots only
  SlotIndex hosts_;                       // host routes: references are slot + 1
  uint32_t capacity_ = 0;
  Route outside_;
  std::atomic<uint32_t> version_{1};  // dp: acquire; cp: release increments
  // Control only:
  std::vector<uint32_t> free_;
  std::map<identity::Prefix, uint32_t> slot_of_;
  std::deque<std::pair<uint64_t, uint32_t>> retired_slots_;
  std::deque<std::pair<uint64_t, rte_lpm6*>> retired_v6_;
};

}  // namespace meshgate::dataplane
