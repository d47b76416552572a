#include "dataplane/service_table.h"

#include <rte_byteorder.h>
#include <rte_jhash.h>

#include <rte_cycles.h>

#include <rte_errno.h>
#include <rte_hash_crc.h>

#include <atomic>
#include <cstring>

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

namespace {
std::atomic<uint64_t> g_seq{0};
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
  std::string name = meshgate::StrCat("mgsvc", g_seq.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = uint32_t(specs.size() * 2 + 8);
  p.key_len = sizeof(ServiceKey);
  p.hash_func = rte_hash_crc;
  p.socket_id = SOCKET_ID_ANY;
  t->h_ = rte_hash_create(&p);
  if (t->h_ == nullptr) {
    return absl::ResourceExhaustedError(meshgate::StrCat("service table: ", rte_strerror(rte_errno)));
  }
  t->index_of_pos_.assign(size_t(rte_hash_max_key_id(t->h_)) + 1, -1);
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
    int32_t pos = rte_hash_add_key(t->h_, &svc.key);
    if (pos < 0) return absl::ResourceExhaustedError("service table full");
    if (t->index_of_pos_[pos] >= 0) {
      return absl::AlreadyExistsError(
          meshgate::StrCat("two services share the frontend ", s.vip.ToString(), ":", s.port));
    }
    t->index_of_pos_[pos] = int32_t(t->services_.size());
    t->services_.push_back(svc);
  }
  return t;
}

ServiceTable::~ServiceTable() {
  if (h_ != nullptr) rte_hash_free(h_);
}

}  // namespace meshgate::dataplane
