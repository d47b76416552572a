#include "dataplane/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "identity/strutil.h"

namespace meshgate::dataplane {
namespace {
bool g_initialized = false;  // process-wide by nature: EAL is per process
char g_runtime_dir[4096] = {};
char g_hugefile_prefix[256] = {};  // "<prefix>map_" when secondaries may attach

// The EAL leaves its runtime directory (/var/run/dpdk/<prefix>) behind even
// with --in-memory; its files (the telemetry socket) go away at exit. Remove
// what is left so that runs do not pile up directories.
void RemoveRuntimeDir() {
  if (g_runtime_dir[0] == '\0') return;
  std::filesystem::path d(g_runtime_dir);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(d, ec)) {
    if (e.is_socket(ec) || e.is_regular_file(ec)) std::filesystem::remove(e.path(), ec);
  }
  std::filesystem::remove(d, ec);  // only if empty
  // Hugepage files of a process that let secondaries attach.
  if (g_hugefile_prefix[0] == '\0') return;
  std::ifstream mounts("/proc/mounts");
  std::string dev, mnt, type;
  std::string rest;
  while (mounts >> dev >> mnt >> type && std::getline(mounts, rest)) {
    if (type != "hugetlbfs") continue;
    for (const auto& e : std::filesystem::directory_iterator(mnt, ec)) {
      if (e.path().filename().string().rfind(g_hugefile_prefix, 0) == 0) std::filesystem::remove(e.path(), ec);
    }
  }
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) meshgate::StrAppend(&out, " ", s);
  return out;
}
}  // namespace

bool HugepagesAvailable() {
  std::ifstream nr("/proc/sys/vm/nr_hugepages");
  long pages = 0;
  if (!(nr >> pages) || pages <= 0) return false;
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    if (line.find(" hugetlbfs ") != std::string::npos) return true;
  }
  return false;
}

std::vector<std::string> EalArgs(const EalOptions& o) {
  std::vector<std::string> a = {o.name,
                                meshgate::StrCat("--file-prefix=", o.name, "-", getpid()),
                                "--log-level=lib.eal:error"};
  if (o.secondaries) {
    // Hugepage files and a shared config under the prefix, for secondaries
    // to attach to while we run (removed at exit).
  } else if (o.allow_hugepages && HugepagesAvailable()) {
    // Hugepages mapped and unlinked at once: no file survives the process.
    a.push_back("--in-memory");
  } else {
    // malloc'd memory: no hugepage files; no shared config files either.
    // (EAL refuses --in-memory with --no-huge: it implies --huge-unlink.)
    a.push_back("--no-huge");
    a.push_back("--no-shconf");
    a.push_back(meshgate::StrCat("-m", o.no_huge_memory_mb));
  }
  a.insert(a.end(), o.extra.begin(), o.extra.end());
  return a;
}

absl::Status InitEal(const EalOptions& o) {
  if (g_initialized) return absl::FailedPreconditionError("EAL is already initialised");
  if (o.secondaries && !HugepagesAvailable()) {
    return absl::FailedPreconditionError(
        "packet capture (secondary processes) needs hugepages: reserve them "
        "(echo 512 > /proc/sys/vm/nr_hugepages) and mount a hugetlbfs");
  }
  auto args = EalArgs(o);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  if (rte_eal_init(int(args.size()), argv.data()) < 0) {
    return absl::UnavailableError(
        meshgate::StrCat("rte_eal_init failed (", rte_strerror(rte_errno), "); arguments:", Joined(args)));
  }
  g_initialized = true;
  std::strncpy(g_runtime_dir, rte_eal_get_runtime_dir(), sizeof g_runtime_dir - 1);
  if (o.secondaries) std::snprintf(g_hugefile_prefix, sizeof g_hugefile_prefix, "%s-%dmap_", o.name.c_str(), int(getpid()));
  std::atexit(RemoveRuntimeDir);
  return absl::OkStatus();
}

bool EalInitialized() { return g_initialized; }

}  // namespace meshgate::dataplane
