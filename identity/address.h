// IP addresses and prefixes, both families in one type.
//
// Pure (no DPDK). Addresses are stored in network byte order, 16 bytes; an
// IPv4 address occupies the first 4 bytes. Thread-safety: value types.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace meshgate::identity {

enum class Family : uint8_t { kIpv4 = 4, kIpv6 = 6 };

struct IpAddr {
  Family family = Family::kIpv4;
  std::array<uint8_t, 16> bytes{};  // network byte order

  static IpAddr V4(uint32_t host_order);
  // Parses "10.0.0.1" or "fd00::1".
  static absl::StatusOr<IpAddr> Parse(std::string_view text);
  std::string ToString() const;
  int bits() const { return family == Family::kIpv4 ? 32 : 128; }
  uint32_t v4_host_order() const;
  bool bit(int i) const { return (bytes[i / 8] >> (7 - i % 8)) & 1; }

  auto operator<=>(const IpAddr&) const = default;
};

struct Prefix {
  IpAddr addr;  // host bits are zero
  uint8_t len = 0;

  // "10.0.0.0/8", "fd00::/64"; a bare address is a host prefix. Host bits
  // set in the address are an error, as Kubernetes' CIDR validation has it.
  static absl::StatusOr<Prefix> Parse(std::string_view text);
  static Prefix Host(const IpAddr& a) { return Prefix{a, uint8_t(a.bits())}; }
  // The prefix of `a` at `len`, host bits cleared.
  static Prefix Of(const IpAddr& a, int len);
  std::string ToString() const;
  bool Contains(const IpAddr& a) const;
  // True when `other` lies within this prefix (equal included).
  bool Covers(const Prefix& other) const;

  auto operator<=>(const Prefix&) const = default;
};

}  // namespace meshgate::identity
