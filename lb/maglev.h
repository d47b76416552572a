// Maglev consistent hashing as a pure function, with Cilium's parameters
// (pkg/maglev/maglev.go; Eisenbud et al., NSDI 2016, 3.4):
//   offset = h1 % M, skip = h2 % (M - 1) + 1 with (h1, h2) the MurmurHash3
//   x64-128 of the backend's key under the seed's first word; backends take
//   turns claiming their next free preferred slot until all M are filled.
// Backends are sorted by key first, so the table does not depend on input
// order. Table sizes are Cilium's allowed primes. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "identity/address.h"

namespace meshgate::lb {

// MurmurHash3 x64-128 (Appleby, public domain description), 32-bit seed.
std::pair<uint64_t, uint64_t> Murmur3x64_128(std::string_view data, uint32_t seed);

// bpf-lb-maglev-hash-seed: base64 of 12 bytes -> three big-endian words.
struct MaglevSeed {
  uint32_t murmur = 0, jhash_v4 = 0, jhash_v6 = 0;
  static absl::StatusOr<MaglevSeed> Parse(std::string_view base64);
};
inline constexpr std::string_view kDefaultMaglevSeed = "JLfvgnHc2kaSUFaI";
inline constexpr uint32_t kDefaultMaglevTableSize = 16381;

// {251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071}.
bool IsValidMaglevTableSize(uint32_t m);

// The string a backend is hashed by (cilium-semantics.md 5.4):
// "[10.0.0.1:80/TCP,State:active]", IPv6 in brackets, "/i" for internal scope.
std::string MaglevBackendKey(const identity::IpAddr& addr, uint16_t port, std::string_view proto,
                             bool internal = false);

// The lookup table: M entries, each an index into `keys`. Empty for no keys.
std::vector<uint32_t> MaglevTable(const std::vector<std::string>& keys, uint32_t m,
                                  uint32_t murmur_seed);

}  // namespace meshgate::lb
