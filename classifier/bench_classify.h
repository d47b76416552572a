// `meshgate bench classify`: cycles per packet of the verdict lookup beside a
// raw rte_acl IPv4 5-tuple baseline with the same rule count, built and run in
// the same process (as dpdk-test-acl and l3fwd-acl classify), plus compile and
// build times and table memory. Needs an initialised EAL.
// Not thread-safe; runs on the calling lcore.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace meshgate::classifier {

struct BenchResult {
  std::string name;
  double value = 0;
  std::string unit;
  std::string baseline;  // empty: no baseline for this figure
  double baseline_value = 0;
};

// The median of a benchmark's samples (the upper one of an even count).
double Median(std::vector<double> v);

struct BenchOptions {
  // {rules, identities} pairs to measure.
  std::vector<std::pair<uint32_t, uint32_t>> cases = {
      {1000, 1000},   {10000, 1000},   {100000, 1000},
      {10000, 100000}, {10000, 1000000}};
  uint32_t flows = 1 << 16;  // distinct keys cycled through
  int repetitions = 7;       // medians are reported
  uint32_t burst = 32;
  bool progress = true;      // progress lines on stderr
};

std::vector<BenchResult> RunClassifyBench(const BenchOptions& o);

}  // namespace meshgate::classifier
