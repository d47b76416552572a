// StrCat / StrAppend that accept std::string_view.
//
// Debian 12's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so absl::StrCat rejects std::string_view arguments. This
// header is the project's one string builder: strings, views (both kinds),
// integers and doubles. Header-only, no allocation beyond the result.
#pragma once

#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace meshgate {
namespace strutil_internal {

inline void AppendOne(std::string& s, const std::string& v) { s.append(v); }
inline void AppendOne(std::string& s, std::string_view v) { s.append(v); }
inline void AppendOne(std::string& s, const char* v) { s.append(v); }
inline void AppendOne(std::string& s, absl::string_view v) { s.append(v.data(), v.size()); }
inline void AppendOne(std::string& s, char c) { s.push_back(c); }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void AppendOne(std::string& s, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  s.append(buf, r.ptr);
}
inline void AppendOne(std::string& s, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  s.append(buf, r.ptr);
}

}  // namespace strutil_internal

template <typename... A>
std::string StrCat(const A&... a) {
  std::string s;
  (strutil_internal::AppendOne(s, a), ...);
  return s;
}

template <typename... A>
void StrAppend(std::string* s, const A&... a) {
  (strutil_internal::AppendOne(*s, a), ...);
}

inline std::string_view ToStd(absl::string_view v) { return {v.data(), v.size()}; }
inline absl::string_view ToAbsl(std::string_view v) { return {v.data(), v.size()}; }

}  // namespace meshgate
