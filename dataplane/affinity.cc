#include "dataplane/affinity.h"

#include <rte_errno.h>

#include <cstring>

#include "identity/strutil.h"

namespace meshgate::dataplane {

namespace {

bool Same(const ServiceBackend& a, const ServiceBackend& b) {
  return a.family == b.family && a.port == b.port && std::memcmp(a.addr, b.addr, 16) == 0;
}
}  // namespace

absl::StatusOr<std::unique_ptr<AffinityTable>> AffinityTable::Create(uint32_t capacity,
                                                                    rte_rcu_qsbr* qsbr) {
  std::unique_ptr<AffinityTable> t(new AffinityTable());
  t->capacity_ = capacity;
  auto h = SharedHashCreate("affinity table", capacity, sizeof(AffinityKey));
  if (!h.ok()) return h.status();
  t->h_ = *h;
  t->sweep_.Init(t->h_, qsbr);
  t->entries_ = std::make_unique<Entry[]>(size_t(rte_hash_max_key_id(t->h_)) + 1);
  return t;
}

AffinityTable::~AffinityTable() {
  if (h_ != nullptr) rte_hash_free(h_);
}

int32_t AffinityTable::Find(const AffinityKey& k, const ServiceTable& table, int32_t svc,
                            uint64_t now) const noexcept {
  int32_t p = rte_hash_lookup(h_, &k);
  if (p < 0) return -1;
  const Entry& e = entries_[p];
  if (e.expires.load(std::memory_order_acquire) <= now) return -1;
  const uint32_t first = table.First(svc), n = table.NumBackends(svc);
  if (e.index < n && Same(table.Backend(first + e.index), e.backend)) return int32_t(first + e.index);
  // The backends moved (another snapshot): find ours, once; Remember then
  // stores its new position.
  for (uint32_t i = 0; i < n; ++i) {
    if (Same(table.Backend(first + i), e.backend)) return int32_t(first + i);
  }
  return -1;  // it left the service
}

void AffinityTable::Remember(const AffinityKey& k, const ServiceTable& table, int32_t svc, uint32_t b,
                             uint64_t expires) noexcept {
  int32_t p = rte_hash_add_key(h_, &k);
  if (p < 0) {
    full_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Entry& e = entries_[p];
  e.expires.store(0, std::memory_order_relaxed);  // invalid while rewritten
  e.backend = table.Backend(b);
  e.index = b - table.First(svc);
  e.expires.store(expires, std::memory_order_release);
}

uint32_t AffinityTable::Collect(uint64_t now, uint32_t budget) {
  // A worker may still hold the position (or refresh the entry right now:
  // then the client loses its affinity once, as after a timeout).
  return sweep_.Sweep(budget, [&](int32_t p, const void* key, auto& del) {
    if (entries_[p].expires.load(std::memory_order_relaxed) > now) return false;
    AffinityKey k;
    std::memcpy(&k, key, sizeof(k));
    return del(&k);
  });
}

uint32_t AffinityTable::size() const { return uint32_t(rte_hash_count(h_)); }

}  // namespace meshgate::dataplane
