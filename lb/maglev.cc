#include "lb/maglev.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "identity/strutil.h"

namespace meshgate::lb {
namespace {

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

std::pair<uint64_t, uint64_t> Murmur3x64_128(std::string_view data, uint32_t seed) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t len = data.size(), nblocks = len / 16;
  uint64_t h1 = seed, h2 = seed;
  const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
  for (size_t i = 0; i < nblocks; ++i) {
    uint64_t k1, k2;
    std::memcpy(&k1, p + i * 16, 8);  // little-endian host, as the reference
    std::memcpy(&k2, p + i * 16 + 8, 8);
    k1 *= c1;
    k1 = Rotl(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = Rotl(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = Rotl(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = Rotl(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  const uint8_t* tail = p + nblocks * 16;
  uint64_t k1 = 0, k2 = 0;
  switch (len & 15) {
    case 15: k2 ^= uint64_t(tail[14]) << 48; [[fallthrough]];
    case 14: k2 ^= uint64_t(tail[13]) << 40; [[fallthrough]];
    case 13: k2 ^= uint64_t(tail[12]) << 32; [[fallthrough]];
    case 12: k2 ^= uint64_t(tail[11]) << 24; [[fallthrough]];
    case 11: k2 ^= uint64_t(tail[10]) << 16; [[fallthrough]];
    case 10: k2 ^= uint64_t(tail[9]) << 8; [[fallthrough]];
    case 9:
      k2 ^= uint64_t(tail[8]);
      k2 *= c2;
      k2 = Rotl(k2, 33);
      k2 *= c1;
      h2 ^= k2;
      [[fallthrough]];
    case 8: k1 ^= uint64_t(tail[7]) << 56; [[fallthrough]];
    case 7: k1 ^= uint64_t(tail[6]) << 48; [[fallthrough]];
    case 6: k1 ^= uint64_t(tail[5]) << 40; [[fallthrough]];
    case 5: k1 ^= uint64_t(tail[4]) << 32; [[fallthrough]];
    case 4: k1 ^= uint64_t(tail[3]) << 24; [[fallthrough]];
    case 3: k1 ^= uint64_t(tail[2]) << 16; [[fallthrough]];
    case 2: k1 ^= uint64_t(tail[1]) << 8; [[fallthrough]];
    case 1:
      k1 ^= uint64_t(tail[0]);
      k1 *= c1;
      k1 = Rotl(k1, 31);
      k1 *= c2;
      h1 ^= k1;
  }
  h1 ^= len;
  h2 ^= len;
  h1 += h2;
  h2 += h1;
  h1 = Fmix(h1);
  h2 = Fmix(h2);
  h1 += h2;
  h2 += h1;
  return {h1, h2};
}

absl::StatusOr<MaglevSeed> MaglevSeed::Parse(std::string_view b64) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return absl::InvalidArgumentError(meshgate::StrCat("Maglev seed \"", b64, "\" is not base64"));
    acc = acc << 6 | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
    }
  }
  if (out.size() != 12) {
    return absl::InvalidArgumentError(
        meshgate::StrCat("Maglev seed decodes to ", out.size(), " bytes (not 12)"));
  }
  auto be32 = [&](int i) {
    return uint32_t(out[i]) << 24 | uint32_t(out[i + 1]) << 16 | uint32_t(out[i + 2]) << 8 | out[i + 3];
  };
  return MaglevSeed{be32(0), be32(4), be32(8)};
}

bool IsValidMaglevTableSize(uint32_t m) {
  for (uint32_t v : {251u, 509u, 1021u, 2039u, 4093u, 8191u, 16381u, 32749u, 65521u, 131071u}) {
    if (m == v) return true;
  }
  return false;
}

std::string MaglevBackendKey(const identity::IpAddr& addr, uint16_t port, std::string_view proto,
                             bool internal) {
  std::string a = addr.family == identity::Family::kIpv6
                      ? meshgate::StrCat("[", addr.ToString(), "]")
                      : addr.ToString();
  return meshgate::StrCat("[", a, ":", port, "/", proto, internal ? "/i" : "", ",State:active]");
}

std::vector<uint32_t> MaglevTable(const std::vector<std::string>& keys, uint32_t m,
                                  uint32_t seed) {
  std::vector<uint32_t> table;
  if (keys.empty() || m < 2) return table;
  // Sort by key so that the table does not depend on the input order.
  std::vector<uint32_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  const size_t n = keys.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    auto [h1, h2] = Murmur3x64_128(keys[order[i]], seed);
    offset[i] = h1 % m;
    skip[i] = h2 % (m - 1) + 1;
  }
  std::vector<int64_t> entry(m, -1);
  for (uint32_t filled = 0; filled < m;) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      // The i-th backend's next preferred slot: (offset + j * skip) % m.
      uint64_t c = (offset[i] + next[i] * skip[i]) % m;
      while (entry[c] >= 0) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % m;
      }
      entry[c] = int64_t(i);
      ++next[i];
      ++filled;
    }
  }
  table.resize(m);
  for (uint32_t j = 0; j < m; ++j) table[j] = order[size_t(entry[j])];
  return table;
}

}  // namespace meshgate::lb
