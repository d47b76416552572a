// The identity registry: numeric id <-> label set.
//
// Identities are allocated per cluster as Cilium does: the same label set in
// the same cluster gets the same id; cluster C allocates from C<<16 (layout
// in numeric.h). Identities learnt from other clusters are upserted with
// their id. Reserved identities are present from the start. CIDR identities
// live in the local scope (1<<24).
//
// Pure, no DPDK. Thread-safety: not thread-safe; owned by the control thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "identity/labels.h"
#include "identity/numeric.h"

namespace meshgate::identity {

// The labels of a reserved identity (reserved:host, ...); kube-apiserver also
// carries reserved:remote-node (Cilium numericidentity.go).
Labels ReservedLabels(NumericIdentity id);

class Registry {
 public:
  explicit Registry(ClusterLayout layout = {});

  // Allocates (or returns the existing) id of `labels` in `cluster_id`.
  // Fails when the cluster's range is exhausted or cluster_id is invalid.
  absl::StatusOr<NumericIdentity> Allocate(uint32_t cluster_id, const Labels& labels);
  // Allocates a local-scope identity (CIDR identities).
  absl::StatusOr<NumericIdentity> AllocateLocal(const Labels& labels);
  // Records an identity learnt from the mesh. Refuses to relabel a reserved
  // id or to move a label set to another id within one cluster.
  absl::Status Upsert(NumericIdentity id, const Labels& labels);
  absl::Status Remove(NumericIdentity id);

  const Labels* Find(NumericIdentity id) const;
  std::optional<NumericIdentity> Lookup(uint32_t cluster_id, const Labels& l) const;
  // Every identity, ordered by id.
  const std::map<NumericIdentity, Labels>& all() const { return by_id_; }
  size_t size() const { return by_id_.size(); }
  const ClusterLayout& layout() const { return layout_; }
  // Names the registry's contents: drawn from a process-wide counter at
  // construction and at every change, so two registries (or one before and
  // after a change) never share a version. What the policy compiler checks
  // before it reuses the peer classes of a previous compilation.
  uint64_t version() const { return version_; }

 private:
  void Changed();
  ClusterLayout layout_;
  uint64_t version_ = 0;
  std::map<NumericIdentity, Labels> by_id_;
  // key: cluster id (or 0xFFFFFFFF for local scope) + kvstore label string.
  absl::flat_hash_map<std::string, NumericIdentity> by_labels_;
  absl::flat_hash_map<uint32_t, NumericIdentity> next_;  // per cluster
};

}  // namespace meshgate::identity
