// Starting DPDK's EAL: one place that decides hugepages vs --no-huge and
// gives every EAL its own file prefix, so tests and tools run in parallel and
// leave no hugepage files behind.
// Thread-safety: InitEal must be called once per process, before any lcore.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace meshgate::dataplane {

struct EalOptions {
  std::string name = "meshgate";  // becomes part of the file prefix
  // Memory in MiB for --no-huge (ignored with hugepages, which grow on demand).
  int no_huge_memory_mb = 512;
  bool allow_hugepages = true;  // use them when mounted and reserved
  // Let secondary processes (dpdk-dumpcap, dpdk-pdump, dpdk-proc-info)
  // attach: hugepages with files and a shared config under the file prefix
  // (<name>-<pid>). The files are removed at exit. Requires hugepages.
  bool secondaries = false;
  std::vector<std::string> extra;  // appended as-is (e.g. --vdev, -l)
};

// True when hugepages are reserved and a hugetlbfs is mounted.
bool HugepagesAvailable();

// The argument vector InitEal would pass to rte_eal_init.
std::vector<std::string> EalArgs(const EalOptions& o);

// rte_eal_init with EalArgs(o): --in-memory with hugepages, --no-huge
// --no-shconf without; either way no shared config and no hugepage files
// survive the process. Returns the EAL's error (and arguments) on failure.
absl::Status InitEal(const EalOptions& o);

// True after a successful InitEal in this process.
bool EalInitialized();

}  // namespace meshgate::dataplane
