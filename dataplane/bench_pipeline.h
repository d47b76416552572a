// `meshgate bench pipeline`: the whole packet path on in-memory bursts, and
// policy snapshots swapped under load. Needs an initialised EAL with at
// least two lcores for the hitless-update run (the worker runs on another).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classifier/bench_classify.h"  // BenchResult

namespace meshgate::dataplane {

struct PipelineBenchOptions {
  uint32_t rules = 10000;
  uint32_t identities = 100000;
  uint32_t flows = 1 << 16;
  int repetitions = 7;
  uint32_t swaps = 1000;  // hitless updates
  bool progress = true;
  // Runs one phase only ("new", "established", "updates"; empty: all), e.g.
  // to profile it with perf.
  std::string only;
  // The breakdown runs: the same bursts without conntrack (established)
  // and without the verdict cache (new connections).
  bool breakdown = true;
};

std::vector<classifier::BenchResult> RunPipelineBench(const PipelineBenchOptions& o);

}  // namespace meshgate::dataplane
