#include "identity/registry.h"

#include <atomic>

#include "identity/strutil.h"

namespace meshgate::identity {
namespace {
constexpr uint32_t kLocalScopeKey = 0xFFFFFFFFu;

std::string Key(uint32_t scope, const Labels& l) {
  return meshgate::StrCat(scope, "/", l.FormatForKVStore());
}
}  // namespace

Labels ReservedLabels(NumericIdentity id) {
  Labels l;
  auto name = ReservedName(id);
  if (id == reserved::kUnknown || name.empty()) return l;
  l.Set(Label{std::string(kSourceReserved), std::string(name), ""});
  if (id == reserved::kKubeApiserver) {
    l.Set(Label{std::string(kSourceReserved), "remote-node", ""});
  }
  return l;
}

Registry::Registry(ClusterLayout layout) : layout_(layout) {
  for (NumericIdentity id = 1; id <= reserved::kMaxReserved; ++id) {
    by_id_[id] = ReservedLabels(id);
  }
  Changed();
}

void Registry::Changed() {
  static std::atomic<uint64_t> next{0};
  version_ = next.fetch_add(1, std::memory_order_relaxed) + 1;
}

absl::StatusOr<NumericIdentity> Registry::Allocate(uint32_t c, const Labels& labels) {
  if (c > layout_.cluster_id_max()) {
    return absl::InvalidArgumentError(meshgate::StrCat(
        "cluster id ", c, " out of range 0..", layout_.cluster_id_max()));
  }
  auto key = Key(c, labels);
  if (auto it = by_labels_.find(key); it != by_labels_.end()) return it->second;
  auto [nit, inserted] = next_.try_emplace(c, layout_.MinId(c));
  NumericIdentity id = nit->second;
  while (id <= layout_.MaxId(c) && by_id_.contains(id)) ++id;
  if (id > layout_.MaxId(c)) {
    return absl::ResourceExhaustedError(
        meshgate::StrCat("identity range of cluster ", c, " is exhausted"));
  }
  nit->second = id + 1;
  by_id_[id] = labels;
  by_labels_[key] = id;
  Changed();
  return id;
}

absl::StatusOr<NumericIdentity> Registry::AllocateLocal(const Labels& labels) {
  auto key = Key(kLocalScopeKey, labels);
  if (auto it = by_labels_.find(key); it != by_labels_.end()) return it->second;
  auto [nit, inserted] = next_.try_emplace(kLocalScopeKey, kScopeLocal + 1);
  NumericIdentity id = nit->second;
  while (by_id_.contains(id)) ++id;
  if ((id & kScopeMask) != kScopeLocal) {
    return absl::ResourceExhaustedError("local identity scope is exhausted");
  }
  nit->second = id + 1;
  by_id_[id] = labels;
  by_labels_[key] = id;
  Changed();
  return id;
}

absl::Status Registry::Upsert(NumericIdentity id, const Labels& labels) {
  if (id == reserved::kUnknown) {
    return absl::InvalidArgumentError("identity 0 is not a valid identity");
  }
  if (id <= reserved::kMaxReserved) {
    if (labels == by_id_[id]) return absl::OkStatus();
    return absl::InvalidArgumentError(
        meshgate::StrCat("reserved identity ", id, " cannot be relabelled"));
  }
  uint32_t scope = IsLocalScope(id) ? kLocalScopeKey : layout_.ClusterOf(id);
  auto key = Key(scope, labels);
  if (auto it = by_labels_.find(key); it != by_labels_.end() && it->second != id) {
    return absl::AlreadyExistsError(meshgate::StrCat(
        "labels ", labels.ToString(), " already have identity ", it->second));
  }
  if (auto old = by_id_.find(id); old != by_id_.end()) {
    by_labels_.erase(Key(scope, old->second));
  }
  by_id_[id] = labels;
  by_labels_[key] = id;
  Changed();
  return absl::OkStatus();
}

absl::Status Registry::Remove(NumericIdentity id) {
  if (id <= reserved::kMaxReserved) {
    return absl::InvalidArgumentError("reserved identities cannot be removed");
  }
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return absl::NotFoundError(meshgate::StrCat("no identity ", id));
  uint32_t scope = IsLocalScope(id) ? kLocalScopeKey : layout_.ClusterOf(id);
  by_labels_.erase(Key(scope, it->second));
  by_id_.erase(it);
  Changed();
  return absl::OkStatus();
}

const Labels* Registry::Find(NumericIdentity id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<NumericIdentity> Registry::Lookup(uint32_t c, const Labels& l) const {
  auto it = by_labels_.find(Key(c, l));
  if (it == by_labels_.end()) return std::nullopt;
  return it->second;
}

}  // namespace meshgate::identity
