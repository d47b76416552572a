#include "dataplane/ipcache_table.h"

#include <rte_errno.h>

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {
std::atomic<uint64_t> g_seq{0};

rte_lpm6* NewLpm6(uint32_t routes) {
  std::string name = meshgate::StrCat("mgip6_", g_seq.fetch_add(1));
  rte_lpm6_config c{};
  c.max_rules = routes + 16;
  c.number_tbl8s = (routes + 16) * 13;  // up to one per byte past the first 24 bits
  return rte_lpm6_create(name.c_str(), SOCKET_ID_ANY, &c);
}
}  // namespace

absl::StatusOr<std::unique_ptr<IpcacheTable>> IpcacheTable::Create(const Config& c,
                                                                   rte_rcu_qsbr* qsbr) {
  // A route's slot is its LPM next hop: 24 bits in rte_lpm, 21 in rte_lpm6
  // (DPDK lib/lpm/rte_lpm6.c, rte_lpm6_tbl_entry), where a wider one would
  // be cut without an error.
  if (c.max_routes == 0 || c.max_routes > kMaxRoutes) {
    return absl::InvalidArgumentError(meshgate::StrCat(
        "ipcache: ", c.max_routes, " routes; 1 to ", kMaxRoutes,
        " (a route's slot is an IPv6 LPM next hop, 21 bits)"));
  }
  std::unique_ptr<IpcacheTable> t(new IpcacheTable());
  t->qsbr_ = qsbr;
  t->capacity_ = c.max_routes;
  t->slots_ = std::make_unique<Slot[]>(c.max_routes);
  if (auto st = t->hosts_.Init(c.max_routes, "ipcache host routes"); !st.ok()) return st;
  t->free_.reserve(c.max_routes);
  for (uint32_t i = c.max_routes; i > 0; --i) t->free_.push_back(i - 1);
  std::string name = meshgate::StrCat("mgip4_", g_seq.fetch_add(1));
  rte_lpm_config lc{};
  lc.max_rules = c.max_routes;
  lc.number_tbl8s = c.v4_tbl8s;
  t->lpm4_ = rte_lpm_create(name.c_str(), SOCKET_ID_ANY, &lc);
  if (t->lpm4_ == nullptr) {
    return absl::ResourceExhaustedError(meshgate::StrCat("rte_lpm_create: ", rte_strerror(rte_errno)));
  }
  if (qsbr != nullptr) {
    rte_lpm_rcu_config rc{};
    rc.v = qsbr;
    rc.mode = RTE_LPM_QSBR_MODE_DQ;
    if (rte_lpm_rcu_qsbr_add(t->lpm4_, &rc) != 0) {
      return absl::InternalError(meshgate::StrCat("rte_lpm_rcu_qsbr_add: ", rte_strerror(rte_errno)));
    }
  }
  t->lpm6_.store(NewLpm6(0));
  if (t->lpm6_.load() == nullptr) return absl::ResourceExhaustedError("rte_lpm6_create failed");
  return t;
}

IpcacheTable::~IpcacheTable() {
  if (lpm4_ != nullptr) rte_lpm_free(lpm4_);
  if (rte_lpm6* t = lpm6_.load()) rte_lpm6_free(t);
  for (auto& [tok, t] : retired_v6_) rte_lpm6_free(t);
}

uint32_t IpcacheTable::AllocSlot() {
  if (free_.empty()) return kOutsideRoute;
  uint32_t s = free_.back();
  free_.pop_back();
  return s;
}

absl::Status IpcacheTable::Upsert(const identity::Prefix& p, const Route& r) {
  auto it = slot_of_.find(p);
  if (it != slot_of_.end() && slots_[it->second].route == r) return absl::OkStatus();
  uint32_t slot = AllocSlot();
  if (slot == kOutsideRoute) {
    Reclaim();
    slot = AllocSlot();
    if (slot == kOutsideRoute) return absl::ResourceExhaustedError("ipcache table is full");
  }
  const bool host = IsHost(p), v4 = p.addr.family == identity::Family::kIpv4;
  Slot& s = slots_[slot];  // not yet reachable by any worker
  s.route = r;
  s.family = host ? (v4 ? 4 : 6) : 0;
  if (host && v4) s.v4 = p.addr.v4_host_order();
  if (host && !v4) std::memcpy(s.v6, p.addr.bytes.data(), 16);
  if (host) {
    // Publish: a new key's reference, or the existing key's slot switched
    // with one store.
    bool ok = it != slot_of_.end() ? hosts_.Replace(HostHash(p), it->second + 1, slot + 1)
                                   : hosts_.Insert(HostHash(p), slot + 1);
    if (!ok) {
      free_.push_back(slot);
      return absl::ResourceExhaustedError(
          meshgate::StrCat("ipcache host index: no room for ", p.ToString()));
    }
  } else if (v4) {
    int rc = rte_lpm_add(lpm4_, p.addr.v4_host_order(), p.len, slot);
    if (rc != 0) {
      free_.push_back(slot);
      return absl::ResourceExhaustedError(
          meshgate::StrCat("rte_lpm_add ", p.ToString(), ": ", rte_strerror(-rc)));
    }
  }
  uint64_t token = rte_rcu_qsbr_start(qsbr_);
  if (it != slot_of_.end()) {
    retired_slots_.emplace_back(token, it->second);
    it->second = slot;
  } else {
    slot_of_.emplace(p, slot);
  }
  absl::Status st = !host && !v4 ? RebuildV6() : absl::OkStatus();
  version_.fetch_add(1, std::memory_order_release);
  return st;
}

absl::Status IpcacheTable::Remove(const identity::Prefix& p) {
  auto it = slot_of_.find(p);
  if (it == slot_of_.end()) return absl::NotFoundError(meshgate::StrCat("no ipcache entry ", p.ToString()));
  uint32_t slot = it->second;
  slot_of_.erase(it);
  const bool host = IsHost(p), v4 = p.addr.family == identity::Family::kIpv4;
  if (host) {
    if (!hosts_.Remove(HostHash(p), slot + 1)) {
      return absl::InternalError(meshgate::StrCat("ipcache host index lost ", p.ToString()));
    }
  } else if (v4) {
    int rc = rte_lpm_delete(lpm4_, p.addr.v4_host_order(), p.len);
    if (rc != 0) return absl::InternalError(meshgate::StrCat("rte_lpm_delete: ", rte_strerror(-rc)));
  }
  retired_slots_.emplace_back(rte_rcu_qsbr_start(qsbr_), slot);
  absl::Status st = !host && !v4 ? RebuildV6() : absl::OkStatus();
  version_.fetch_add(1, std::memory_order_release);
  return st;
}

absl::Status IpcacheTable::RebuildV6() {
  uint32_t n = 0;  // the prefixes; host routes are in the index
  for (const auto& [p, s] : slot_of_) n += p.addr.family == identity::Family::kIpv6 && !IsHost(p);
  rte_lpm6* t = NewLpm6(n);
  if (t == nullptr) return absl::ResourceExhaustedError("rte_lpm6_create failed");
  for (const auto& [p, s] : slot_of_) {
    if (p.addr.family != identity::Family::kIpv6 || IsHost(p)) continue;
    if (int rc = rte_lpm6_add(t, p.addr.bytes.data(), p.len, s); rc != 0) {
      rte_lpm6_free(t);
      return absl::ResourceExhaustedError(meshgate::StrCat("rte_lpm6_add: ", rte_strerror(-rc)));
    }
  }
  rte_lpm6* old = lpm6_.exchange(t, std::memory_order_acq_rel);
  retired_v6_.emplace_back(rte_rcu_qsbr_start(qsbr_), old);
  return absl::OkStatus();
}

std::vector<identity::Prefix> IpcacheTable::Prefixes() const {
  std::vector<identity::Prefix> v;
  v.reserve(slot_of_.size());
  for (const auto& [p, s] : slot_of_) v.push_back(p);
  return v;
}

void IpcacheTable::Reclaim() {
  while (!retired_slots_.empty() &&
         rte_rcu_qsbr_check(qsbr_, retired_slots_.front().first, false) == 1) {
    free_.push_back(retired_slots_.front().second);
    retired_slots_.pop_front();
  }
  while (!retired_v6_.empty() && rte_rcu_qsbr_check(qsbr_, retired_v6_.front().first, false) == 1) {
    rte_lpm6_free(retired_v6_.front().second);
    retired_v6_.pop_front();
  }
}

}  // namespace meshgate::dataplane
