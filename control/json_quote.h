// A JSON string literal for `s` (quotes, backslashes and control characters
// escaped). The CLIs print JSON by hand: no JSON library is packaged here
// beside protobuf's, and the outputs are flat.
#pragma once

#include <fmt/core.h>

#include <string>
#include <string_view>

namespace meshgate::control {

inline std::string JsonQuote(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) o += fmt::format("\\u{:04x}", int(c));
        else o += c;
    }
  }
  return o + "\"";
}

}  // namespace meshgate::control
