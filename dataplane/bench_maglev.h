// `meshgate bench maglev`: Maglev table generation with Cilium's parameters
// (lb/maglev.h) for M = 16381 and 65521 with 10/100/1000 backends (medians),
// and the datapath's service lookup + backend pick (ServiceTable) in cycles
// per packet beside a bare rte_hash lookup of the same keys (the baseline in
// the same run).
#pragma once

#include <vector>

#include "classifier/bench_classify.h"  // BenchResult

namespace meshgate::dataplane {

struct MaglevBenchOptions {
  std::vector<uint32_t> table_sizes = {16381, 65521};
  std::vector<uint32_t> backends = {10, 100, 1000};
  int repetitions = 5;
  uint32_t services = 1000;          // for the lookup figure
  uint32_t backends_per_service = 100;
  uint32_t lookups = 1 << 20;
  bool progress = true;
};

std::vector<classifier::BenchResult> RunMaglevBench(const MaglevBenchOptions& o);

}  // namespace meshgate::dataplane
