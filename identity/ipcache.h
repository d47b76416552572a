// The ipcache model: prefix -> identity (+ tunnel endpoint), longest prefix
// wins, an unknown address is world.
//
// Mirrors Cilium's ipcache (pkg/ipcache): mesh endpoints are host prefixes;
// prefixes named by CIDR policy rules get local-scope CIDR identities that
// carry the `cidr:` labels of every covering policy prefix plus
// `reserved:world` (Cilium's GetCIDRLabels). Because an endpoint's own host
// prefix is more specific than any policy prefix, CIDR selectors never match
// a mesh endpoint's address ("CIDR rules do not apply to traffic where both
// sides of the connection are managed by Cilium", layer3.rst).
//
// Pure, no DPDK; the fast-path LPM tables are built from this. Thread-safety:
// not thread-safe; owned by the control thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "identity/address.h"
#include "identity/endpoint.h"
#include "identity/numeric.h"
#include "identity/registry.h"

namespace meshgate::identity {

struct IpCacheEntry {
  NumericIdentity id = reserved::kWorld;
  std::optional<IpAddr> tunnel_endpoint;  // node to encapsulate to
  uint32_t source_cluster = 0;
  std::vector<NamedPort> named_ports;
  bool from_cidr_policy = false;  // allocated by SyncCidrIdentities
};

class IpCache {
 public:
  // `dual_stack`: unknown addresses resolve to world-ipv4 / world-ipv6
  // instead of world, as Cilium does when both families are enabled.
  explicit IpCache(bool dual_stack = false) : dual_stack_(dual_stack) {}

  void Upsert(const Prefix& p, IpCacheEntry e);
  bool Remove(const Prefix& p);

  struct Result {
    NumericIdentity id;
    const IpCacheEntry* entry;  // null when nothing matched (world)
    std::optional<Prefix> prefix;
  };
  Result Lookup(const IpAddr& a) const;

  // Makes the CIDR identities match `policy_prefixes` exactly: allocates
  // (in `reg`'s local scope) one identity per prefix with the cidr: labels of
  // every covering policy prefix plus reserved:world, adds an entry unless a
  // mesh entry of that exact prefix exists, and removes CIDR entries (and
  // their identities) no longer named.
  absl::Status SyncCidrIdentities(const std::set<Prefix>& policy_prefixes,
                                  Registry& reg);

  const std::map<Prefix, IpCacheEntry>& entries() const { return entries_; }
  // Union of every entry's named ports: how Cilium resolves egress named
  // ports (ipcache GetNamedPorts, a multimap across all endpoints).
  std::vector<NamedPort> AllNamedPorts() const;

 private:
  bool dual_stack_;
  std::map<Prefix, IpCacheEntry> entries_;
  std::map<int, int> lengths_[2];  // family index -> prefix length -> count
};

}  // namespace meshgate::identity
