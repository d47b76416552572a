#include "identity/address.h"

#include <arpa/inet.h>

#include <charconv>

#include "identity/strutil.h"

namespace meshgate::identity {

IpAddr IpAddr::V4(uint32_t h) {
  IpAddr a;
  a.family = Family::kIpv4;
  a.bytes[0] = h >> 24;
  a.bytes[1] = h >> 16;
  a.bytes[2] = h >> 8;
  a.bytes[3] = h;
  return a;
}

uint32_t IpAddr::v4_host_order() const {
  return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 |
         uint32_t(bytes[2]) << 8 | bytes[3];
}

absl::StatusOr<IpAddr> IpAddr::Parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (s.find(':') != std::string::npos) {
    a.family = Family::kIpv6;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  } else {
    a.family = Family::kIpv4;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  }
  return absl::InvalidArgumentError(meshgate::StrCat("invalid IP address '", text, "'"));
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == Family::kIpv4 ? AF_INET : AF_INET6, bytes.data(), buf,
            sizeof(buf));
  return buf;
}

Prefix Prefix::Of(const IpAddr& a, int len) {
  Prefix p{a, uint8_t(len)};
  for (int i = len; i < a.bits(); ++i) p.addr.bytes[i / 8] &= ~(0x80 >> (i % 8));
  return p;
}

absl::StatusOr<Prefix> Prefix::Parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddr::Parse(text.substr(0, slash));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(meshgate::StrCat("invalid CIDR '", text, "'"));
  }
  int len = addr->bits();
  if (slash != std::string_view::npos) {
    auto ls = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), len);
    if (ec != std::errc() || p != ls.data() + ls.size() || ls.empty() ||
        len < 0 || len > addr->bits()) {
      return absl::InvalidArgumentError(
          meshgate::StrCat("invalid prefix length in CIDR '", text, "'"));
    }
  }
  Prefix p = Of(*addr, len);
  if (p.addr != *addr) {
    return absl::InvalidArgumentError(meshgate::StrCat(
        "CIDR '", text, "' has host bits set (did you mean ", p.ToString(), "?)"));
  }
  return p;
}

std::string Prefix::ToString() const {
  return meshgate::StrCat(addr.ToString(), "/", len);
}

bool Prefix::Contains(const IpAddr& a) const {
  if (a.family != addr.family) return false;
  return Of(a, len).addr == addr;
}

bool Prefix::Covers(const Prefix& o) const {
  return o.addr.family == addr.family && o.len >= len && Contains(o.addr);
}

}  // namespace meshgate::identity
