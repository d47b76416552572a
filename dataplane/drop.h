// One drop taxonomy: Cilium's drop reasons, one name table, one drop exit.
//
// Numbers and names are Cilium's (api/v1/flow/flow.proto enum DropReason,
// "shared with pkg/monitor/api/drop.go and bpf/lib/common.h"), so a meshgate
// drop reads like a Cilium one in Hubble terms. The policy reasons are the
// classifier's (verdict.h) and are checked equal at compile time.
// Header-only except the name table. Fast path: the sink counts per reason
// into a per-lcore array and frees in bulk; no allocation, lock or log.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "classifier/verdict.h"

namespace meshgate::dataplane {

enum class DropReason : uint8_t {
  kNone = 0,
  kInvalidSourceMac = 130,
  kInvalidDestinationMac = 131,
  kInvalidSourceIp = 132,
  kPolicyDenied = 133,
  kInvalidPacket = 134,
  kCtTruncatedOrInvalidHeader = 135,
  kCtUnknownL4Protocol = 137,
  kUnsupportedL3Protocol = 139,
  kErrorWritingToPacket = 141,
  kUnknownL4Protocol = 142,
  kUnknownL3TargetAddress = 150,
  kNoMatchingLocalContainer = 152,
  kCtMapInsertionFailed = 155,
  kInvalidIpv6ExtensionHeader = 156,
  kFragmentationNotSupported = 157,
  kServiceBackendNotFound = 158,
  kNoTunnelEndpoint = 160,
  kUnsupportedL2Protocol = 166,
  kFibLookupFailed = 169,
  kInvalidIdentity = 171,
  kFirstFragmentNotFound = 175,
  kPolicyDeny = 181,
  kVlanFiltered = 182,
  kInvalidVni = 183,
  kTtlExceeded = 196,
};

static_assert(uint8_t(DropReason::kPolicyDenied) ==
              uint8_t(classifier::PolicyReason::kPolicyDenied));
static_assert(uint8_t(DropReason::kPolicyDeny) ==
              uint8_t(classifier::PolicyReason::kPolicyDeny));

// Cilium's enum name ("POLICY_DENIED") and its human string ("Policy
// denied"); empty for a value that is not a meshgate drop reason.
std::string_view DropReasonEnumName(DropReason r);
std::string_view DropReasonText(DropReason r);
// Every reason meshgate uses, for tables, metrics and the sync test.
const std::array<DropReason, 25>& AllDropReasons();

// Per-lcore, per-port drop counters. Written by one lcore only; read by
// control with relaxed loads (64-bit aligned counters; torn reads are not
// possible on the supported 64-bit targets). dp: rw (one lcore), cp: ro.
struct alignas(RTE_CACHE_LINE_SIZE) DropCounters {
  uint64_t by_reason[256] = {};
};

}  // namespace meshgate::dataplane
