// Catch2 main for tests that need DPDK: starts an EAL (--no-huge --no-pci
// --no-shconf, its own file prefix; no files survive) before the tests run.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "dataplane/eal.h"

int main(int argc, char** argv) {
  meshgate::dataplane::EalOptions o;
  o.name = "mg-test";
  o.allow_hugepages = false;
  o.no_huge_memory_mb = 512;
  o.extra = {"--no-pci", "-l", "0,1"};  // lcore 1 for worker tests
  auto st = meshgate::dataplane::InitEal(o);
  if (!st.ok()) {
    std::fprintf(stderr, "EAL: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return Catch::Session().run(argc, argv);
}
