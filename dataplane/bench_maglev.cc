#include "dataplane/bench_maglev.h"

#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_jhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "dataplane/service_table.h"
#include "identity/strutil.h"
#include "lb/maglev.h"

namespace meshgate::dataplane {

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

identity::IpAddr Addr(uint32_t base, uint32_t i) { return identity::IpAddr::V4(base + i); }

}  // namespace

std::vector<classifier::BenchResult> RunMaglevBench(const MaglevBenchOptions& o) {
  std::vector<classifier::BenchResult> out;
  const uint32_t seed = lb::MaglevSeed::Parse(lb::kDefaultMaglevSeed)->murmur;
  for (uint32_t m : o.table_sizes) {
    for (uint32_t n : o.backends) {
      std::vector<std::string> keys;
      for (uint32_t i = 0; i < n; ++i) {
        keys.push_back(lb::MaglevBackendKey(Addr(0x0a000000, i), 8080, "TCP"));
      }
      std::vector<double> ms;
      size_t sink = 0;
      for (int r = 0; r < o.repetitions; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        auto t = lb::MaglevTable(keys, m, seed);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        sink += t[r % t.size()];
      }
      if (o.progress) std::fprintf(stderr, "maglev: M=%u N=%u %.3f ms (median of %d)%s\n", m, n, Median(ms), o.repetitions, sink == SIZE_MAX ? " " : "");
      out.push_back({StrCat("maglev_table_build_ms_M", m, "_N", n), Median(ms), "ms", "", 0});
    }
  }

  // Service lookup + pick over many services, beside a bare rte_hash lookup.
  std::vector<ServiceSpec> specs;
  std::vector<std::string> keys;
  for (uint32_t s = 0; s < o.services; ++s) {
    ServiceSpec sp;
    sp.vip = Addr(0x0a600000, s);
    sp.port = 80;
    sp.proto = 6;
    keys.clear();
    for (uint32_t b = 0; b < o.backends_per_service; ++b) {
      sp.backends.push_back({Addr(0x0a000000 + (s << 8), b), 8080});
      keys.push_back(lb::MaglevBackendKey(sp.backends.back().addr, 8080, "TCP"));
    }
    sp.maglev = lb::MaglevTable(keys, 1021, seed);  // small M: 1,000 services fit in cache as they would not at 16381
    specs.push_back(std::move(sp));
  }
  auto table = ServiceTable::Build(specs);
  if (!table.ok()) {
    std::fprintf(stderr, "maglev: %s\n", std::string(table.status().message()).c_str());
    return out;
  }
  rte_hash_parameters hp{};
  std::string hname = StrCat("mgb_bare_", rte_rdtsc());
  hp.name = hname.c_str();
  hp.entries = o.services * 2;
  hp.key_len = sizeof(ServiceKey);
  hp.hash_func = rte_jhash;
  hp.socket_id = SOCKET_ID_ANY;
  rte_hash* bare = rte_hash_create(&hp);
  std::vector<ServiceKey> q(o.lookups);
  std::vector<uint32_t> flow(o.lookups);
  std::mt19937 rng(1);
  for (uint32_t i = 0; i < o.services; ++i) {
    ServiceKey k{};
    k.family = 4;
    k.proto = 6;
    k.port = 80;
    uint32_t a = 0x0a600000 + i;
    k.addr[0] = uint8_t(a >> 24), k.addr[1] = uint8_t(a >> 16), k.addr[2] = uint8_t(a >> 8), k.addr[3] = uint8_t(a);
    if (bare) rte_hash_add_key(bare, &k);
  }
  for (uint32_t i = 0; i < o.lookups; ++i) {
    uint32_t a = 0x0a600000 + rng() % o.services;
    ServiceKey& k = q[i];
    k.family = 4;
    k.proto = 6;
    k.port = 80;
    k.addr[0] = uint8_t(a >> 24), k.addr[1] = uint8_t(a >> 16), k.addr[2] = uint8_t(a >> 8), k.addr[3] = uint8_t(a);
    flow[i] = rng();
  }
  std::vector<double> svc, base, lookup_only;
  uint64_t sink = 0;
  for (int r = 0; r < o.repetitions; ++r) {
    uint64_t t0 = rte_rdtsc_precise();
    for (uint32_t i = 0; i < o.lookups; ++i) sink += uint32_t((*table)->Lookup(q[i]));
    lookup_only.push_back(double(rte_rdtsc_precise() - t0) / o.lookups);
    t0 = rte_rdtsc_precise();
    for (uint32_t i = 0; i < o.lookups; ++i) {
      int32_t s = (*table)->Lookup(q[i]);
      if (s >= 0) sink += (*table)->Backend((*table)->Pick(s, flow[i])).port;
    }
    svc.push_back(double(rte_rdtsc_precise() - t0) / o.lookups);
    t0 = rte_rdtsc_precise();
    for (uint32_t i = 0; i < o.lookups; ++i) sink += uint32_t(rte_hash_lookup(bare, &q[i]));
    base.push_back(double(rte_rdtsc_precise() - t0) / o.lookups);
  }
  if (bare) rte_hash_free(bare);
  if (o.progress) {
    std::fprintf(stderr, "maglev: service lookup+pick %.1f cycles, bare rte_hash lookup %.1f (%u services x %u backends)%s\n",
                 Median(svc), Median(base), o.services, o.backends_per_service, sink == 1 ? " " : "");
  }
  out.push_back({StrCat("service_lookup_cycles_per_packet_", o.services), Median(lookup_only),
                 "cycles/packet", "rte_hash_lookup", Median(base)});
  out.push_back({StrCat("service_lookup_pick_cycles_per_packet_", o.services, "x", o.backends_per_service),
                 Median(svc), "cycles/packet", "rte_hash_lookup", Median(base)});
  return out;
}

}  // namespace meshgate::dataplane
