// The fast path of the classifier: verdicts for a burst in one
// rte_acl_classify call.
//
// The ACL key has no addresses (compile.h): {protocol, subject class, peer
// class, destination port (ICMP type), direction}. Allow and deny rules sit in
// separate categories, so one classify gives both answers and deny wins.
// rte_acl compares multi-byte fields in network byte order (DPDK
// app/test/test_acl.c converts its traces with rte_cpu_to_be_*), hence the
// big-endian key.
//
// Thread-safety (DPDK lib/acl/rte_acl.h): building is not multi-thread safe,
// classification is. A table is built by the control thread, published in a
// snapshot, read by any number of workers, and never modified after Build.
// The hot path (Classify) allocates nothing, takes no lock, logs nothing.
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/compile.h"
#include "classifier/verdict.h"

struct rte_acl_ctx;
struct rte_hash;

namespace meshgate::classifier {

struct alignas(4) AclKey {
  uint8_t proto;
  uint8_t pad[3];
  rte_be32_t subject_class;
  rte_be32_t peer_class;
  rte_be16_t dport;  // ICMP/ICMPv6: the type
  rte_be16_t dir;    // Direction
};
static_assert(sizeof(AclKey) == 16);

inline void MakeAclKey(AclKey& k, uint8_t proto, uint32_t subject, uint32_t peer,
                       uint16_t dport, Direction dir) {
  k.proto = proto;
  k.pad[0] = k.pad[1] = k.pad[2] = 0;
  k.subject_class = rte_cpu_to_be_32(subject);
  k.peer_class = rte_cpu_to_be_32(peer);
  k.dport = rte_cpu_to_be_16(dport);
  k.dir = rte_cpu_to_be_16(uint16_t(dir));
}

class AclTable {
 public:
  // Builds the rte_acl context of `cp` on `socket_id` (-1 = any). The build
  // uses the best classify method this CPU and EAL's max SIMD bitwidth allow
  // (AVX-512 needs --force-max-simd-bitwidth=512).
  static absl::StatusOr<std::unique_ptr<AclTable>> Build(const CompiledPolicy& cp,
                                                         int socket_id = -1);
  ~AclTable();
  AclTable(const AclTable&) = delete;
  AclTable& operator=(const AclTable&) = delete;

  // Verdicts for `n` keys. Any n; processed in chunks of kChunk.
  void Classify(const AclKey* const* keys, uint32_t n, PolicyResult* out) const noexcept;

  static constexpr uint32_t kChunk = 64;
  uint32_t num_rules() const { return num_rules_; }
  size_t memory_bytes() const { return memory_bytes_; }
  const char* algorithm() const;

 private:
  AclTable() = default;
  rte_acl_ctx* ctx_ = nullptr;  // null when there are no rules
  std::vector<uint8_t> enforced_;
  bool audit_ = false;
  uint32_t num_rules_ = 0;
  size_t memory_bytes_ = 0;
};

// Identity -> peer class, an rte_hash with lock-free readers
// (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF): the control thread may add an
// identity that joins an existing class while workers look up, without an
// ACL rebuild (architecture.md invariant 1).
class IdentityClassTable {
 public:
  static absl::StatusOr<std::unique_ptr<IdentityClassTable>> Build(
      const CompiledPolicy& cp, uint32_t capacity, int socket_id = -1);
  ~IdentityClassTable();
  IdentityClassTable(const IdentityClassTable&) = delete;
  IdentityClassTable& operator=(const IdentityClassTable&) = delete;

  // Control thread only (single writer).
  absl::Status Set(uint32_t identity, uint32_t peer_class);
  absl::Status Erase(uint32_t identity);

  // Workers: classes of `n` identities (n <= 64); unknown -> class 0.
  void LookupBulk(const uint32_t* ids, uint32_t n, uint32_t* classes) const noexcept;
  uint32_t Lookup(uint32_t id) const noexcept;
  size_t memory_bytes() const { return memory_bytes_; }

 private:
  IdentityClassTable() = default;
  rte_hash* h_ = nullptr;
  size_t memory_bytes_ = 0;
};

}  // namespace meshgate::classifier
