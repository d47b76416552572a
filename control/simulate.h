// `meshgate simulate`: runs scenario files (scenario-format.md) through real
// pipelines. One Instance per cluster in this process, each with one
// net_ring port per endpoint (and a fabric port, and an uplink port when
// external hosts reach it), its own Agent, fed by a mesh controller through
// mesh feed frames (the same bytes the feed socket carries). The fabric is an
// in-memory underlay that moves the encapsulated frames between instances by
// their outer destination address. A probe is a real first packet injected
// at the source endpoint's port; its verdict is where it comes out.
//
// Thread-safety: one thread (instances are polled, no worker lcores).
// REQUIRES: the EAL is initialised and the packet metadata registered.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace meshgate::control {

struct SimulateOptions {
  bool json = false;
  bool verbose = false;  // also report frames the underlay could not deliver
  FILE* out = stdout;
  FILE* err = stderr;
};

struct SimulateTotals {
  int passed = 0, failed = 0;
  int errors = 0;  // files that could not be run (each also counts its probes failed)
};

// Runs each file; prints one line (or JSON object) per probe. The caller
// prints the final "N passed, M failed".
SimulateTotals Simulate(const std::vector<std::string>& files, const SimulateOptions& o);

}  // namespace meshgate::control
