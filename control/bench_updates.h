// `meshgate bench updates`: identity and ipcache updates through the agent
// (the path every mesh feed update takes), applied in place into the
// published snapshot's tables, beside the same batches compiled and
// published as snapshots in the same run.
#pragma once

#include <cstdint>
#include <vector>

#include "classifier/bench_classify.h"

namespace meshgate::control {

struct UpdatesBenchOptions {
  uint32_t identities = 100000;  // loaded before measuring
  uint32_t rules = 10000;
  uint32_t updates = 100000;     // new identities measured, each with its ipcache entry
  uint32_t batch = 1000;         // identities per Commit
  uint32_t baseline_batches = 5; // batches measured with in-place updates off
  bool progress = true;
};

// EAL must be initialised. Empty on a setup failure (printed to stderr).
std::vector<classifier::BenchResult> RunUpdatesBench(const UpdatesBenchOptions& o);

}  // namespace meshgate::control
