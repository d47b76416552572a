#include "dataplane/drop.h"

namespace meshgate::dataplane {
namespace {

struct Entry {
  DropReason reason;
  std::string_view enum_name;
  std::string_view text;
};

// Names from flow.proto; texts from Cilium's pkg/monitor/api/drop.go.
constexpr Entry kTable[] = {
    {DropReason::kInvalidSourceMac, "INVALID_SOURCE_MAC", "Invalid source mac"},
    {DropReason::kInvalidDestinationMac, "INVALID_DESTINATION_MAC", "Invalid destination mac"},
    {DropReason::kInvalidSourceIp, "INVALID_SOURCE_IP", "Invalid source ip"},
    {DropReason::kPolicyDenied, "POLICY_DENIED", "Policy denied"},
    {DropReason::kInvalidPacket, "INVALID_PACKET_DROPPED", "Invalid packet"},
    {DropReason::kCtTruncatedOrInvalidHeader, "CT_TRUNCATED_OR_INVALID_HEADER",
     "CT: Truncated or invalid header"},
    {DropReason::kCtUnknownL4Protocol, "CT_UNKNOWN_L4_PROTOCOL", "CT: Unknown L4 protocol"},
    {DropReason::kUnsupportedL3Protocol, "UNSUPPORTED_L3_PROTOCOL", "Unsupported L3 protocol"},
    {DropReason::kErrorWritingToPacket, "ERROR_WRITING_TO_PACKET", "Error writing to packet"},
    {DropReason::kUnknownL4Protocol, "UNKNOWN_L4_PROTOCOL", "Unknown L4 protocol"},
    {DropReason::kUnknownL3TargetAddress, "UNKNOWN_L3_TARGET_ADDRESS",
     "Unknown L3 target address"},
    {DropReason::kNoMatchingLocalContainer, "NO_MATCHING_LOCAL_CONTAINER_FOUND",
     "No matching local container found"},
    {DropReason::kCtMapInsertionFailed, "CT_MAP_INSERTION_FAILED", "CT: Map insertion failed"},
    {DropReason::kInvalidIpv6ExtensionHeader, "INVALID_IPV6_EXTENSION_HEADER",
     "Invalid IPv6 extension header"},
    {DropReason::kFragmentationNotSupported, "IP_FRAGMENTATION_NOT_SUPPORTED",
     "IP fragmentation not supported"},
    {DropReason::kServiceBackendNotFound, "SERVICE_BACKEND_NOT_FOUND",
     "Service backend not found"},
    {DropReason::kNoTunnelEndpoint, "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT",
     "No tunnel/encapsulation endpoint (datapath BUG!)"},
    {DropReason::kUnsupportedL2Protocol, "UNSUPPORTED_L2_PROTOCOL", "Unsupported L2 protocol"},
    {DropReason::kFibLookupFailed, "FIB_LOOKUP_FAILED", "FIB lookup failed"},
    {DropReason::kInvalidIdentity, "INVALID_IDENTITY", "Invalid identity"},
    {DropReason::kFirstFragmentNotFound, "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND",
     "First logical datagram fragment not found"},
    {DropReason::kPolicyDeny, "POLICY_DENY", "Policy denied by denylist"},
    {DropReason::kVlanFiltered, "VLAN_FILTERED", "VLAN traffic disallowed by VLAN filter"},
    {DropReason::kInvalidVni, "INVALID_VNI", "Incorrect VNI from VTEP"},
    {DropReason::kTtlExceeded, "TTL_EXCEEDED", "TTL exceeded"},
};
static_assert(std::size(kTable) == 25);

constexpr const Entry* Find(DropReason r) {
  for (const auto& e : kTable) {
    if (e.reason == r) return &e;
  }
  return nullptr;
}

}  // namespace

std::string_view DropReasonEnumName(DropReason r) {
  const Entry* e = Find(r);
  return e ? e->enum_name : std::string_view();
}

std::string_view DropReasonText(DropReason r) {
  const Entry* e = Find(r);
  return e ? e->text : std::string_view();
}

const std::array<DropReason, 25>& AllDropReasons() {
  static const std::array<DropReason, 25> all = [] {
    std::array<DropReason, 25> a{};
    for (size_t i = 0; i < a.size(); ++i) a[i] = kTable[i].reason;
    return a;
  }();
  return all;
}

}  // namespace meshgate::dataplane
