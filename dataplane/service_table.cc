#include "dataplane/service_table.h"

#include <rte_byteorder.h>
#include <rte_jhash.h>

#include <rte_cycles.h>

#include <cstring>
#include <random>

#include "identity/strutil.h"

namespace meshgate::dataplane {

uint32_t LbFlowHash(uint8_t family, const uint8_t* client, uint16_t client_port,
                    uint16_t service_port, uint8_t proto, uint32_t seed) noexcept {
  auto word = [client](int i) {
    uint32_t w;
    std::memcpy(&w, client + 4 * i, 4);
    return rte_le_to_cpu_32(w);
  };
  // The 16-bit big-endian port read little endian is its byte swap.
  const uint32_t ports = uint32_t(rte_bswap16(service_port)) << 16 | rte_bswap16(client_port);
  if (family == 4) return rte_jhash_3words(word(0), ports, proto, seed);
  uint32_t a = word(0), b = word(1), c = word(2);
  __rte_jhash_mix(a, b, c);
  a += word(3);
  b += ports;
  c += proto;
  __rte_jhash_mix(a, b, c);
  a += seed;
  __rte_jhash_final(a, b, c);
  return c;
}

ServiceKey MakeServiceKey(const identity::IpAddr& a, uint16_t port, uint8_t proto) {
  ServiceKey k;
  k.family = a.family == identity::Family::kIpv4 ? 4 : 6;
  k.proto = proto;
  k.port = port;
  std::memcpy(k.addr, a.bytes.data(), a.family == identity::Family::kIpv4 ? 4 : 16);
  return k;
}

absl::StatusOr<std::unique_ptr<ServiceTable>> ServiceTable::Build(
    const std::vector<ServiceSpec>& specs) {
  std::unique_ptr<ServiceTable> t(new ServiceTable());
  if (specs.size() > (1u << 24)) return absl::ResourceExhaustedError("service table: over 16M services");
  uint32_t slots = 8, log2 = 3;
  while (slots < specs.size() * 4) slots <<= 1, ++log2;
  t->slots_.assign(slots, -1);
  t->slot_mask_ = slots - 1;
  t->slot_shift_ = 64 - log2;
  std::random_device rd;  // the kernel's generator (getrandom)
  for (uint64_t& k : t->slot_key_) k = uint64_t(rd()) << 32 | rd();
  uint32_t bits = 4096;
  while (bits < specs.size() * 16 && bits < (1u << 24)) bits <<= 1;
  t->filter_.assign(bits / 64, 0);
  t->filter_mask_ = bits - 1;
  for (const auto& s : specs) {
    Svc svc;
    svc.key = MakeServiceKey(s.vip, s.port, s.proto);
    svc.first = uint32_t(t->backends_.size());
    svc.n = uint32_t(s.backends.size());
    svc.affinity_ticks = uint64_t(s.affinity_timeout_s) * rte_get_tsc_hz();
    svc.seed_v4 = s.hash_seed_v4;
    svc.seed_v6 = s.hash_seed_v6;
    for (const auto& b : s.backends) {
      ServiceBackend be;
      ServiceKey bk = MakeServiceKey(b.addr, b.port, s.proto);
      be.family = bk.family;
      be.port = b.port;
      std::memcpy(be.addr, bk.addr, 16);
      t->backends_.push_back(be);
    }
    for (uint32_t e : s.maglev) {
      if (e >= svc.n) return absl::InvalidArgumentError("Maglev entry beyond the backends");
    }
    svc.table_off = uint32_t(t->table_.size());
    svc.table_size = uint32_t(s.maglev.size());
    t->table_.insert(t->table_.end(), s.maglev.begin(), s.maglev.end());
    const uint32_t fb = FilterHash(svc.key) & t->filter_mask_;
    t->filter_[fb >> 6] |= uint64_t(1) << (fb & 63);
    uint32_t p = t->SlotOf(svc.key);
    for (; t->slots_[p] >= 0; p = (p + 1) & t->slot_mask_) {
      if (SameKey(t->services_[t->slots_[p]].key, svc.key)) {
        return absl::AlreadyExistsError(
            meshgate::StrCat("two services share the frontend ", s.vip.ToString(), ":", s.port));
      }
    }
    t->slots_[p] = int32_t(t->services_.size());
    t->services_.push_back(svc);
  }
  return t;
}

}  // namespace meshgate::dataplane
