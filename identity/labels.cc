#include "identity/labels.h"

#include <algorithm>

#include "identity/strutil.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace meshgate::identity {

bool IsKnownSource(std::string_view s) {
  for (auto k : {kSourceUnspec, kSourceAny, kSourceK8s, kSourceContainer,
                 kSourceCni, kSourceReserved, kSourceCidr, kSourceCidrGroup,
                 kSourceNode, kSourceFqdn, kSourceDirectory}) {
    if (s == k) return true;
  }
  return false;
}

absl::StatusOr<Label> Label::Parse(std::string_view text) {
  Label l;
  auto colon = text.find(':');
  auto eq = text.find('=');
  // A ':' after '=' belongs to the value.
  if (colon != std::string_view::npos && (eq == std::string_view::npos || colon < eq)) {
    l.source = std::string(text.substr(0, colon));
    text.remove_prefix(colon + 1);
    eq = text.find('=');
  } else {
    l.source = std::string(kSourceUnspec);
  }
  if (eq == std::string_view::npos) {
    l.key = std::string(text);
  } else {
    l.key = std::string(text.substr(0, eq));
    l.value = std::string(text.substr(eq + 1));
  }
  if (l.key.empty()) {
    return absl::InvalidArgumentError(meshgate::StrCat("label '", text, "' has no key"));
  }
  return l;
}

Label Label::Cidr(const Prefix& p) {
  return Label{std::string(kSourceCidr),
               absl::StrReplaceAll(p.ToString(), {{":", "-"}}), ""};
}

std::optional<Prefix> Label::CidrPrefix() const {
  if (source != kSourceCidr) return std::nullopt;
  auto p = Prefix::Parse(absl::StrReplaceAll(key, {{"-", ":"}}));
  if (!p.ok()) return std::nullopt;
  return *p;
}

std::string Label::ToString() const {
  if (value.empty()) return meshgate::StrCat(source, ":", key);
  return meshgate::StrCat(source, ":", key, "=", value);
}

Labels::Labels(std::initializer_list<Label> ls) {
  for (const auto& l : ls) Set(l);
}

absl::StatusOr<Labels> Labels::Parse(std::string_view text) {
  Labels out;
  for (auto part : absl::StrSplit(ToAbsl(text), absl::ByAnyChar(";, "), absl::SkipEmpty())) {
    auto l = Label::Parse(ToStd(part));
    if (!l.ok()) return l.status();
    out.Set(*std::move(l));
  }
  return out;
}

void Labels::Set(Label l) {
  auto it = std::lower_bound(
      labels_.begin(), labels_.end(), l.key,
      [](const Label& a, const std::string& k) { return a.key < k; });
  if (it != labels_.end() && it->key == l.key) {
    *it = std::move(l);
  } else {
    labels_.insert(it, std::move(l));
  }
}

const Label* Labels::Find(std::string_view key) const {
  auto it = std::lower_bound(
      labels_.begin(), labels_.end(), key,
      [](const Label& a, std::string_view k) { return a.key < k; });
  if (it != labels_.end() && it->key == key) return &*it;
  return nullptr;
}

std::string Labels::FormatForKVStore() const {
  std::string out;
  for (const auto& l : labels_) meshgate::StrAppend(&out, l.source, ":", l.key, "=", l.value, ";");
  return out;
}

std::string Labels::ToString() const {
  std::string out;
  for (const auto& l : labels_) {
    if (!out.empty()) out += ",";
    out += l.ToString();
  }
  return out;
}

}  // namespace meshgate::identity
