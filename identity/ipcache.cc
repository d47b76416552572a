#include "identity/ipcache.h"

#include <algorithm>

namespace meshgate::identity {
namespace {
int FamIdx(Family f) { return f == Family::kIpv4 ? 0 : 1; }
}  // namespace

void IpCache::Upsert(const Prefix& p, IpCacheEntry e) {
  auto [it, inserted] = entries_.insert_or_assign(p, std::move(e));
  if (inserted) ++lengths_[FamIdx(p.addr.family)][p.len];
}

bool IpCache::Remove(const Prefix& p) {
  if (entries_.erase(p) == 0) return false;
  auto& m = lengths_[FamIdx(p.addr.family)];
  if (--m[p.len] == 0) m.erase(p.len);
  return true;
}

IpCache::Result IpCache::Lookup(const IpAddr& a) const {
  const auto& m = lengths_[FamIdx(a.family)];
  for (auto it = m.rbegin(); it != m.rend(); ++it) {
    Prefix p = Prefix::Of(a, it->first);
    if (auto e = entries_.find(p); e != entries_.end()) {
      return {e->second.id, &e->second, p};
    }
  }
  NumericIdentity world = reserved::kWorld;
  if (dual_stack_) {
    world = a.family == Family::kIpv4 ? reserved::kWorldIpv4 : reserved::kWorldIpv6;
  }
  return {world, nullptr, std::nullopt};
}

absl::Status IpCache::SyncCidrIdentities(const std::set<Prefix>& prefixes,
                                         Registry& reg) {
  // Drop CIDR entries that are no longer named.
  std::vector<Prefix> stale;
  for (const auto& [p, e] : entries_) {
    if (e.from_cidr_policy && !prefixes.contains(p)) stale.push_back(p);
  }
  for (const auto& p : stale) {
    NumericIdentity id = entries_[p].id;
    Remove(p);
    (void)reg.Remove(id);  // local ids are owned by this cache
  }
  for (const auto& p : prefixes) {
    Labels l;
    for (const auto& q : prefixes) {
      if (q.Covers(p)) l.Set(Label::Cidr(q));
    }
    l.Set(Label{std::string(kSourceReserved), "world", ""});
    if (dual_stack_) {
      l.Set(Label{std::string(kSourceReserved),
                  p.addr.family == Family::kIpv4 ? "world-ipv4" : "world-ipv6", ""});
    }
    auto it = entries_.find(p);
    if (it != entries_.end() && !it->second.from_cidr_policy) continue;  // mesh entry wins
    NumericIdentity old = it != entries_.end() ? it->second.id : 0;
    auto id = reg.AllocateLocal(l);
    if (!id.ok()) return id.status();
    if (old != 0 && old != *id) (void)reg.Remove(old);
    IpCacheEntry e;
    e.id = *id;
    e.from_cidr_policy = true;
    Upsert(p, std::move(e));
  }
  return absl::OkStatus();
}

std::vector<NamedPort> IpCache::AllNamedPorts() const {
  std::vector<NamedPort> out;
  for (const auto& [p, e] : entries_) {
    out.insert(out.end(), e.named_ports.begin(), e.named_ports.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace meshgate::identity
