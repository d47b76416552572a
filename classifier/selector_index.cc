#include "classifier/selector_index.h"

#include <algorithm>

#include "identity/strutil.h"

namespace meshgate::classifier {

using identity::SelectorOp;

SelectorIndex::SelectorIndex(const std::vector<identity::Selector>& sels) : sels_(sels) {
  for (uint32_t i = 0; i < sels.size(); ++i) {
    const identity::Requirement* anchor = nullptr;
    for (const auto& r : sels[i].requirements()) {
      if (r.cidr) continue;  // prefix-aware: no exact label to anchor on
      if (r.op == SelectorOp::kIn) {
        anchor = &r;
        break;
      }
      if (r.op == SelectorOp::kExists && anchor == nullptr) anchor = &r;
    }
    if (anchor == nullptr) {
      unanchored_.push_back(i);
    } else if (anchor->op == SelectorOp::kIn) {
      for (const auto& v : anchor->values) {
        by_key_value_[meshgate::StrCat(anchor->key, "=", v)].push_back(i);
      }
    } else {
      by_key_[anchor->key].push_back(i);
    }
  }
}

void SelectorIndex::Match(const identity::Labels& labels, std::vector<uint32_t>& out) const {
  out.clear();
  auto check = [&](const std::vector<uint32_t>& cands) {
    for (uint32_t i : cands) {
      if (sels_[i].Matches(labels)) out.push_back(i);
    }
  };
  std::string kv;
  for (const auto& l : labels.list()) {
    kv.assign(l.key).append("=").append(l.value);
    if (auto it = by_key_value_.find(kv); it != by_key_value_.end()) check(it->second);
    if (auto it = by_key_.find(l.key); it != by_key_.end()) check(it->second);
  }
  check(unanchored_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace meshgate::classifier
