// Services as the fast path sees them: frontend (address, port, protocol)
// -> the serving backends and their Maglev table. Built by control from
// lb/ (selection with affinity, serving states, Maglev); immutable; part of
// a snapshot.
//
// Thread-safety: built by control, read by any worker.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/slot_index.h"
#include "identity/address.h"

namespace meshgate::dataplane {

struct ServiceBackendSpec {
  identity::IpAddr addr;
  uint16_t port = 0;
};

struct ServiceSpec {
  identity::IpAddr vip;
  uint16_t port = 0;
  uint8_t proto = 6;
  std::vector<ServiceBackendSpec> backends;  // the serving ones, in order
  std::vector<uint32_t> maglev;              // entries index `backends`; empty: random
  uint32_t affinity_timeout_s = 0;           // sessionAffinity ClientIP; 0 = none
  // Maglev's lookup hash seeds (bpf-lb-maglev-hash-seed words 2 and 3).
  uint32_t hash_seed_v4 = 0, hash_seed_v6 = 0;
};

// Cilium's backend-selection hash over a client's flow to a service
// (bpf/lib/hash.h __hash_from_tuple_v4/v6, as bpf/lib/lb.h
// lb4_select_backend_id_maglev calls it): IPv4 is jhash_3words(client
// address, service port << 16 | client port, protocol, seed); IPv6 mixes the
// four address words the same way. Words are the packet's bytes read little
// endian (HASH_WORD32_LE/HASH_WORD16_LE), the service address is left out
// on purpose, and with session affinity the client port is 0. `client` is
// the address in network order (4 or 16 bytes); ports in host order.
uint32_t LbFlowHash(uint8_t family, const uint8_t* client, uint16_t client_port,
                    uint16_t service_port, uint8_t proto, uint32_t seed) noexcept;

struct ServiceKey {
  uint8_t family = 0, proto = 0;
  uint16_t port = 0;  // host order
  uint8_t addr[16] = {};
};
static_assert(sizeof(ServiceKey) == 20);

struct ServiceBackend {
  uint8_t family = 0;
  uint16_t port = 0;   // host order
  uint8_t addr[16] = {};
};

class ServiceTable {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceTable>> Build(const std::vector<ServiceSpec>& s);
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;

  // The service of a frontend (its index in Build's list), or -1. Keys the
  // filter rules out are answered without the index.
  int32_t Lookup(const ServiceKey& k) const noexcept {
    if (!MayBeFrontend(k)) return -1;
    for (uint32_t p = SlotOf(k);; p = (p + 1) & slot_mask_) {
      const int32_t s = slots_[p];
      if (s < 0 || SameKey(services_[s].key, k)) return s;  // a slot is always free
    }
  }
  // Lookup for an IPv4 frontend from two words in registers: `head` the
  // key's first four bytes as a little-endian word (family 4, protocol,
  // port) and the address as it lies in the packet. The same answer as
  // Lookup of the key they make, without reading a key back from memory
  // (one just stored as smaller words cannot be forwarded to the hash's
  // wider loads: perf put a third of ServiceMatch on that stall).
  int32_t Lookup4(uint32_t head, uint32_t addr_be) const noexcept {
    if (!Bit(FilterHash4(addr_be, uint16_t(head >> 16), uint8_t(head >> 8)))) return -1;
    const uint64_t w0 = uint64_t(head) | uint64_t(addr_be) << 32;
    const uint64_t h = slot_key_[5] + slot_key_[0] * head + slot_key_[1] * addr_be;
    for (uint32_t p = uint32_t(h >> slot_shift_);; p = (p + 1) & slot_mask_) {
      const int32_t s = slots_[p];
      if (s < 0) return s;
      // The first eight bytes say it all: family 4 there, and an IPv4
      // key's bytes after its address are 0 (MakeServiceKey).
      uint64_t x;
      std::memcpy(&x, &services_[s].key, 8);
      if (x == w0) return s;
    }
  }
  // False: no service has this frontend. True: perhaps one has (Lookup
  // says). One bit per hash of (address, port, protocol), 16 or more bits
  // per service, so most destinations that are no frontend are told by one
  // load (a pod's address, every packet from an endpoint).
  bool MayBeFrontend(const ServiceKey& k) const noexcept { return Bit(FilterHash(k)); }
  // The same as the parses ask it: for IPv4 from a tuple's head word
  // (TupleHead's layout: protocol and destination port; family and source
  // port ignored) and the destination as it lies in the packet; for IPv6
  // read from the packet (16 bytes at `addr`).
  bool MayBeFrontendOfHead(uint64_t head, uint32_t addr_be) const noexcept {
    return Bit(FilterHashOfHead(head, addr_be));
  }
  bool MayBeFrontend6(const uint8_t* addr, uint16_t port, uint8_t proto) const noexcept {
    return Bit(FilterHash6(addr, port, proto));
  }
  uint32_t NumBackends(int32_t svc) const noexcept { return services_[svc].n; }
  uint32_t First(int32_t svc) const noexcept { return services_[svc].first; }
  // sessionAffinity ClientIP timeout in TSC ticks; 0 = no affinity.
  uint64_t AffinityTicks(int32_t svc) const noexcept { return services_[svc].affinity_ticks; }
  // Maglev (lb-algorithm: maglev) or Cilium's default, random selection.
  bool UsesMaglev(int32_t svc) const noexcept { return services_[svc].table_size != 0; }
  // The LbFlowHash of a client's flow under the service's seeds.
  uint32_t FlowHash(int32_t svc, uint8_t family, const uint8_t* client, uint16_t client_port,
                    uint16_t service_port, uint8_t proto) const noexcept {
    const Svc& s = services_[svc];
    return LbFlowHash(family, client, client_port, service_port, proto,
                      family == 4 ? s.seed_v4 : s.seed_v6);
  }
  // The backend for `hash`: Maglev's entry hash % M when the service has a
  // table (lb4_select_backend_id_maglev); otherwise backend hash % n, as
  // lb4_select_backend_id_random does with a random number.
  uint32_t Pick(int32_t svc, uint32_t hash) const noexcept {
    const Svc& s = services_[svc];
    uint32_t i = s.table_size ? table_[s.table_off + hash % s.table_size] : hash % s.n;
    return s.first + i;
  }
  const ServiceBackend& Backend(uint32_t b) const noexcept { return backends_[b]; }
  // The frontend of a service, for reverse NAT.
  const ServiceKey& Frontend(int32_t svc) const noexcept { return services_[svc].key; }
  size_t size() const { return services_.size(); }
  // The index's key comparison: all 20 bytes, in three loads a side.
  static bool SameKey(const ServiceKey& a, const ServiceKey& b) noexcept {
    uint64_t x[2], y[2];
    uint32_t xt, yt;
    std::memcpy(x, &a, 16);
    std::memcpy(y, &b, 16);
    std::memcpy(&xt, reinterpret_cast<const uint8_t*>(&a) + 16, 4);
    std::memcpy(&yt, reinterpret_cast<const uint8_t*>(&b) + 16, 4);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (xt ^ yt)) == 0;
  }

 private:
  struct Svc {
    ServiceKey key;
    uint32_t first = 0, n = 0;
    uint32_t table_off = 0, table_size = 0;
    uint64_t affinity_ticks = 0;
    uint32_t seed_v4 = 0, seed_v6 = 0;
  };
  ServiceTable() = default;
  // The protocol and the port where a conntrack tuple's head word holds
  // them (TupleHead: proto bits 8-15, dport 48-63), the address as the
  // CRC's seed: the parse hashes the head it built with one AND
  // (FilterHashOfHead).
  static constexpr uint64_t kHeadFilterMask = 0xffff00000000ff00ull;
  static uint32_t FilterHash4(uint32_t addr_be, uint16_t port, uint8_t proto) noexcept {
    return SlotIndex::Crc8(uint64_t(proto) << 8 | uint64_t(port) << 48, addr_be);
  }
  static uint32_t FilterHashOfHead(uint64_t head, uint32_t addr_be) noexcept {
    return SlotIndex::Crc8(head & kHeadFilterMask, addr_be);
  }
  static uint32_t FilterHash6(const uint8_t* addr, uint16_t port, uint8_t proto) noexcept {
    uint32_t a;
    uint64_t w[2];
    std::memcpy(&a, addr, 4);
    std::memcpy(w, addr, 16);
    return SlotIndex::Crc8(w[1], SlotIndex::Crc8(w[0], FilterHash4(a, port, proto)));
  }
  static uint32_t FilterHash(const ServiceKey& k) noexcept {
    if (k.family != 4) return FilterHash6(k.addr, k.port, k.proto);
    uint32_t a;
    std::memcpy(&a, k.addr, 4);
    return FilterHash4(a, k.port, k.proto);
  }
  bool Bit(uint32_t h) const noexcept {
    h &= filter_mask_;
    return (filter_[h >> 6] >> (h & 63)) & 1;
  }
  // The index: open addressing with linear probing over at least four
  // slots per service, each slot a service's index or -1. A key's first
  // slot is the vector multiply-shift hash of its five 32-bit words under
  // this table's random multipliers (strongly universal: Dietzfelbinger
  // 1996; Thorup, "High Speed Hashing for Integers and Strings", 2015,
  // section 3.5), so that no set of frontends collides on purpose.
  uint32_t SlotOf(const ServiceKey& k) const noexcept {
    uint32_t w[5];
    std::memcpy(w, &k, sizeof(w));
    uint64_t h = slot_key_[5];
    for (int i = 0; i < 5; ++i) h += slot_key_[i] * w[i];
    return uint32_t(h >> slot_shift_);
  }
  std::vector<uint64_t> filter_;
  uint32_t filter_mask_ = 0;  // bits - 1
  std::vector<int32_t> slots_;
  uint32_t slot_mask_ = 0, slot_shift_ = 0;  // slots - 1; 64 - log2(slots)
  uint64_t slot_key_[6] = {};
  std::vector<Svc> services_;
  std::vector<ServiceBackend> backends_;
  std::vector<uint32_t> table_;
};

ServiceKey MakeServiceKey(const identity::IpAddr& a, uint16_t port, uint8_t proto);

}  // namespace meshgate::dataplane
