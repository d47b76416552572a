#include "identity/selector.h"

#include <algorithm>

#include "identity/strutil.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace meshgate::identity {

absl::StatusOr<SelectorOp> ParseSelectorOp(std::string_view op) {
  if (op == "In") return SelectorOp::kIn;
  if (op == "NotIn") return SelectorOp::kNotIn;
  if (op == "Exists") return SelectorOp::kExists;
  if (op == "DoesNotExist") return SelectorOp::kDoesNotExist;
  return absl::InvalidArgumentError(meshgate::StrCat(
      "unknown operator '", op, "' (want In, NotIn, Exists or DoesNotExist)"));
}

std::string_view SelectorOpName(SelectorOp op) {
  switch (op) {
    case SelectorOp::kIn: return "In";
    case SelectorOp::kNotIn: return "NotIn";
    case SelectorOp::kExists: return "Exists";
    case SelectorOp::kDoesNotExist: return "DoesNotExist";
  }
  return "?";
}

Requirement Requirement::Make(std::string_view user_key, SelectorOp op,
                              std::vector<std::string> values) {
  Requirement r;
  auto colon = user_key.find(':');
  if (colon != std::string_view::npos) {
    r.source = std::string(user_key.substr(0, colon));
    r.key = std::string(user_key.substr(colon + 1));
  } else {
    r.source = std::string(kSourceAny);
    r.key = std::string(user_key);
  }
  r.op = op;
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  r.values = std::move(values);
  if (r.source == kSourceCidr) {
    auto p = Prefix::Parse(absl::StrReplaceAll(r.key, {{"-", ":"}}));
    if (p.ok()) r.cidr = *p;
  }
  return r;
}

bool Requirement::Matches(const Labels& labels) const {
  // Collect whether a label of this key (and source) exists, and its value.
  bool present = false;
  bool value_in = false;
  if (cidr) {
    // Prefix-aware: any cidr label inside our prefix counts as present.
    for (const auto& l : labels.list()) {
      if (l.source != kSourceCidr) continue;
      auto p = l.CidrPrefix();
      if (p && cidr->Covers(*p)) {
        present = true;
        value_in = value_in ||
                   std::binary_search(values.begin(), values.end(), l.value);
      }
    }
  } else if (const Label* l = labels.Find(key);
             l != nullptr && (source == kSourceAny || l->source == source)) {
    present = true;
    value_in = std::binary_search(values.begin(), values.end(), l->value);
  }
  switch (op) {
    case SelectorOp::kIn: return present && value_in;
    case SelectorOp::kNotIn: return !present || !value_in;
    case SelectorOp::kExists: return present;
    case SelectorOp::kDoesNotExist: return !present;
  }
  return false;
}

std::string Requirement::ToString() const {
  std::string k = meshgate::StrCat(source, ".", key);
  switch (op) {
    case SelectorOp::kIn:
      if (values.size() == 1) return meshgate::StrCat(k, "=", values[0]);
      return meshgate::StrCat(k, " in (", absl::StrJoin(values, ","), ")");
    case SelectorOp::kNotIn:
      return meshgate::StrCat(k, " notin (", absl::StrJoin(values, ","), ")");
    case SelectorOp::kExists: return k;
    case SelectorOp::kDoesNotExist: return meshgate::StrCat("!", k);
  }
  return k;
}

Selector::Selector(std::vector<Requirement> reqs) : reqs_(std::move(reqs)) {
  Canonicalize();
}

Selector Selector::MatchLabel(std::string_view k, std::string_view v) {
  return Selector({Requirement::Make(k, SelectorOp::kIn, {std::string(v)})});
}

Selector Selector::HasLabel(std::string_view k) {
  return Selector({Requirement::Make(k, SelectorOp::kExists)});
}

void Selector::Add(Requirement r) {
  reqs_.push_back(std::move(r));
  Canonicalize();
}

void Selector::Canonicalize() {
  std::sort(reqs_.begin(), reqs_.end(), [](const Requirement& a, const Requirement& b) {
    return a.ToString() < b.ToString();
  });
  reqs_.erase(std::unique(reqs_.begin(), reqs_.end()), reqs_.end());
  std::string c(1, '{');  // (GCC 12 -Wrestrict false positive on `= "{"`)
  for (size_t i = 0; i < reqs_.size(); ++i) {
    if (i) c += ", ";
    c += reqs_[i].ToString();
  }
  c += '}';
  canonical_ = std::move(c);
}

bool Selector::Matches(const Labels& labels) const {
  for (const auto& r : reqs_) {
    if (!r.Matches(labels)) return false;
  }
  return true;
}

bool Selector::HasKey(std::string_view key) const {
  for (const auto& r : reqs_) {
    if (r.key == key && (r.source == kSourceAny || r.source == kSourceK8s)) return true;
  }
  return false;
}

bool Selector::HasKeyPrefix(std::string_view prefix) const {
  for (const auto& r : reqs_) {
    if (r.key.starts_with(prefix) && (r.source == kSourceAny || r.source == kSourceK8s))
      return true;
  }
  return false;
}

bool Selector::HasSource(std::string_view source) const {
  for (const auto& r : reqs_) {
    if (r.source == source) return true;
  }
  return false;
}

}  // namespace meshgate::identity
