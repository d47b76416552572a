#include "classifier/compile.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "identity/strutil.h"
#include "classifier/selector_index.h"

namespace meshgate::classifier {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

// Sorted unique ids -> inclusive ranges of consecutive ids.
Ranges ToRanges(const std::vector<uint32_t>& ids) {
  Ranges out;
  for (uint32_t id : ids) {
    if (!out.empty() && out.back().second + 1 == id) {
      out.back().second = id;
    } else {
      out.emplace_back(id, id);
    }
  }
  return out;
}

// Renumbers classes so that signatures sort lexicographically: classes that
// share their lowest selectors get neighbouring ids, which lets the ACL use
// fewer, wider class ranges. Class 0 (empty signature) stays 0.
template <typename Sig>
std::vector<uint32_t> SortedRenumbering(const std::vector<Sig>& sigs) {
  std::vector<uint32_t> order(sigs.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin() + 1, order.end(),
            [&](uint32_t a, uint32_t b) { return sigs[a] < sigs[b]; });
  std::vector<uint32_t> renum(sigs.size());
  for (uint32_t i = 0; i < order.size(); ++i) renum[order[i]] = i;
  return renum;
}

// FNV-1a over the strings, each followed by a 0 byte: stable across runs
// and compilations.
uint64_t Fnv1a(const std::vector<std::string>& parts) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 0x100000001b3ull; };
  for (const auto& p : parts) {
    for (char c : p) mix(static_cast<unsigned char>(c));
    mix(0);
  }
  return h;
}

std::string_view SectionName(Direction d, bool deny) {
  if (d == Direction::kIngress) return deny ? "ingressDeny" : "ingress";
  return deny ? "egressDeny" : "egress";
}

}  // namespace

std::string RuleOrigin::ToString() const {
  if (file.empty() && line == 0) return policy;
  return meshgate::StrCat(policy, " rule ", rule_index, " ", section, "[", entry_index,
                      "] (", file, ":", line, ")");
}

std::string AclRuleSpec::ToString() const {
  auto range = [](uint32_t lo, uint32_t hi) {
    if (lo == 0 && hi == std::numeric_limits<uint32_t>::max()) return std::string("*");
    if (lo == hi) return meshgate::StrCat(lo);
    return meshgate::StrCat(lo, "-", hi);
  };
  return meshgate::StrCat(category == kDeny ? "deny " : "allow ", DirectionName(dir),
                      " subj=", range(subject_lo, subject_hi),
                      " peer=", range(peer_lo, peer_hi),
                      " proto=", proto == 0 ? std::string("*") : meshgate::StrCat(proto),
                      " port=", port_lo == 0 && port_hi == 65535
                                    ? std::string("*")
                                    : range(port_lo, port_hi),
                      " rule=", rule_id);
}

void ForEachEntry(const std::vector<Policy>& policies,
                  const std::function<void(RuleOrigin, const Rule&, const PeerRule&)>& fn) {
  for (const auto& p : policies) {
    for (size_t ri = 0; ri < p.rules.size(); ++ri) {
      const Rule& r = p.rules[ri];
      for (auto dir : {Direction::kIngress, Direction::kEgress}) {
        for (bool deny : {true, false}) {
          const auto& sec = deny ? r.Deny(dir) : r.Allow(dir);
          for (size_t ei = 0; ei < sec.size(); ++ei) {
            RuleOrigin o;
            o.policy = p.Id();
            o.file = p.file;
            o.rule_index = int(ri);
            o.section = std::string(SectionName(dir, deny));
            o.entry_index = int(ei);
            o.line = sec[ei].line;
            o.dir = dir;
            o.deny = deny;
            fn(std::move(o), r, sec[ei]);
          }
        }
      }
    }
  }
}

std::vector<PortMatch> ResolvePorts(const PeerRule& pr, Direction dir,
                                    const std::vector<identity::NamedPort>& subject_ports,
                                    const std::vector<identity::NamedPort>& mesh_ports) {
  std::vector<PortMatch> out;
  if (pr.AllPorts()) {
    out.push_back({0, 0, 65535});
    return out;
  }
  for (const auto& p : pr.ports) {
    if (p.named.empty()) {
      out.push_back({p.proto, p.port, p.end_port});
      continue;
    }
    // Ingress: the local endpoint's own named ports; egress: every mesh
    // endpoint's (cilium-semantics.md §1.4). Unresolved names match nothing.
    const auto& table = dir == Direction::kIngress ? subject_ports : mesh_ports;
    for (const auto& np : table) {
      if (np.name == p.named && np.proto == p.proto) out.push_back({p.proto, np.port, np.port});
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<uint32_t> CompiledPolicy::ClassifyIdentity(const identity::Labels& l) const {
  std::vector<uint32_t> sig;
  if (peer_index) peer_index->Match(l, sig);
  if (sig.empty()) return 0;
  auto it = peer_class_by_signature.find(sig);
  if (it == peer_class_by_signature.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<CompiledPolicy> Compile(const CompileInput& in) {
  if (in.policies == nullptr || in.identities == nullptr) {
    return absl::InvalidArgumentError("Compile: policies and identities are required");
  }
  CompiledPolicy out;
  out.options = in.options;

  // 1. Entries, origins, distinct subject and peer selectors.
  struct Entry {
    uint32_t rule_id;
    uint32_t subject_sel;
    Direction dir;
    bool deny;
    const PeerRule* pr;
  };
  std::vector<Entry> entries;
  std::vector<Selector> subject_sels;
  absl::flat_hash_map<std::string, uint32_t> subject_sel_idx, peer_sel_idx;
  auto intern = [](std::vector<Selector>& v, absl::flat_hash_map<std::string, uint32_t>& idx,
                   const Selector& s) {
    auto [it, inserted] = idx.try_emplace(s.ToString(), uint32_t(v.size()));
    if (inserted) v.push_back(s);
    return it->second;
  };
  // Which subject selectors switch a direction to default deny.
  std::vector<uint8_t> subject_dd;
  std::set<std::string> ingress_port_names;
  for (const auto& p : *in.policies) {
    for (const auto& r : p.rules) {
      uint32_t s = intern(subject_sels, subject_sel_idx, r.subject);
      subject_dd.resize(subject_sels.size());
      subject_dd[s] |= (r.DefaultDeny(Direction::kIngress) ? 1 : 0) |
                       (r.DefaultDeny(Direction::kEgress) ? 2 : 0);
    }
  }
  ForEachEntry(*in.policies, [&](RuleOrigin o, const Rule& r, const PeerRule& pr) {
    out.origins.push_back(o);
    entries.push_back({uint32_t(out.origins.size()), subject_sel_idx.at(r.subject.ToString()),
                       o.dir, o.deny, &pr});
    for (const auto& s : pr.peers) intern(out.peer_selectors, peer_sel_idx, s);
    if (o.dir == Direction::kIngress) {
      for (const auto& pp : pr.ports) {
        if (!pp.named.empty()) ingress_port_names.insert(pp.named);
      }
    }
  });
  uint32_t host_sel = 0;
  uint32_t localhost_rule = 0;
  if (in.options.allow_localhost) {
    host_sel = intern(out.peer_selectors, peer_sel_idx, Selector::HasLabel("reserved:host"));
    RuleOrigin o;
    o.policy = "allow-localhost (the local host may always reach local endpoints)";
    o.dir = Direction::kIngress;
    out.origins.push_back(o);
    localhost_rule = uint32_t(out.origins.size());
  }

  // Selectors in the order of their canonical strings, not of first use:
  // signatures, class numbers and so the ACL's rules then do not depend on
  // the order of policies (a re-applied policy moves to the end), and a
  // change to one policy leaves the other subjects' rules as they were
  // (ACL partitions are reused by content, acl_table.h).
  auto canonical = [](std::vector<Selector>& sels,
                      absl::flat_hash_map<std::string, uint32_t>& idx) {
    std::vector<std::pair<std::string, uint32_t>> keyed;
    keyed.reserve(sels.size());
    for (uint32_t i = 0; i < sels.size(); ++i) keyed.emplace_back(sels[i].ToString(), i);
    std::sort(keyed.begin(), keyed.end());
    std::vector<uint32_t> renum(sels.size());
    std::vector<Selector> sorted;
    sorted.reserve(sels.size());
    std::vector<std::string> keys;
    keys.reserve(sels.size());
    for (uint32_t n = 0; n < keyed.size(); ++n) {
      renum[keyed[n].second] = n;
      idx[keyed[n].first] = n;
      sorted.push_back(std::move(sels[keyed[n].second]));
      keys.push_back(std::move(keyed[n].first));
    }
    sels = std::move(sorted);
    return std::make_pair(renum, keys);
  };
  {
    auto [renum, keys] = canonical(subject_sels, subject_sel_idx);
    for (Entry& e : entries) e.subject_sel = renum[e.subject_sel];
    std::vector<uint8_t> dd(subject_dd.size());
    for (uint32_t i = 0; i < dd.size(); ++i) dd[renum[i]] = subject_dd[i];
    subject_dd = std::move(dd);
  }
  {
    auto [renum, keys] = canonical(out.peer_selectors, peer_sel_idx);
    if (in.options.allow_localhost) host_sel = renum[host_sel];
    out.peer_selector_keys = std::move(keys);
  }

  // 2. Peer classes over every known identity. From a previous compilation
  // over the same registry contents, its selector order and class numbers
  // are kept: a selector it had keeps its index (one no policy uses any
  // more stays, matching but unused, until such selectors outnumber the
  // live ones), new selectors come after, and only they are matched
  // against the identities; a signature it had keeps its class and a new
  // one is numbered after all. So a policy that brings a new peer
  // selector changes the rules of the classes its selector splits, not
  // the peer ranges of every rule. Otherwise (first compile, identities
  // changed, consolidation) from scratch, in canonical order.
  out.identities_version = in.identities->version();
  const CompiledPolicy* prev = in.previous;
  bool done = false;
  if (prev != nullptr && prev->identities_version == out.identities_version &&
      prev->peer_index != nullptr && prev->peer_selector_keys.size() == prev->peer_selectors.size()) {
    absl::flat_hash_set<std::string> live(out.peer_selector_keys.begin(),
                                          out.peer_selector_keys.end());
    absl::flat_hash_set<std::string> had(prev->peer_selector_keys.begin(),
                                         prev->peer_selector_keys.end());
    size_t dead = 0;
    for (const auto& k : prev->peer_selector_keys) dead += live.contains(k) ? 0 : 1;
    if (dead <= live.size()) {
      std::vector<Selector> sels = prev->peer_selectors;
      std::vector<std::string> keys = prev->peer_selector_keys;
      for (uint32_t i = 0; i < out.peer_selectors.size(); ++i) {
        if (had.contains(out.peer_selector_keys[i])) continue;
        sels.push_back(out.peer_selectors[i]);
        keys.push_back(out.peer_selector_keys[i]);
      }
      const uint32_t first_new = uint32_t(prev->peer_selectors.size());
      out.peer_selectors = std::move(sels);
      out.peer_selector_keys = std::move(keys);
      peer_sel_idx.clear();
      for (uint32_t i = 0; i < out.peer_selector_keys.size(); ++i) {
        peer_sel_idx[out.peer_selector_keys[i]] = i;
      }
      if (in.options.allow_localhost) {
        host_sel = peer_sel_idx.at(Selector::HasLabel("reserved:host").ToString());
      }
      out.peer_class_of = prev->peer_class_of;
      out.peer_class_by_signature = prev->peer_class_by_signature;
      out.peer_signatures = prev->peer_signatures;
      if (first_new == out.peer_selectors.size()) {
        out.peer_index = prev->peer_index;  // no new selector: the same classes
      } else {
        std::vector<Selector> added(out.peer_selectors.begin() + first_new, out.peer_selectors.end());
        const SelectorIndex added_index(added);
        std::vector<uint32_t> hits, sig;
        for (const auto& [id, labels] : in.identities->all()) {
          added_index.Match(labels, hits);
          if (hits.empty()) continue;
          auto old = prev->peer_class_of.find(id);
          sig = out.peer_signatures[old == prev->peer_class_of.end() ? 0 : old->second];
          for (uint32_t h : hits) sig.push_back(first_new + h);
          auto [it, inserted] = out.peer_class_by_signature.try_emplace(
              sig, uint32_t(out.peer_signatures.size()));
          if (inserted) out.peer_signatures.push_back(sig);
          out.peer_class_of[id] = it->second;
        }
        out.peer_index = std::make_shared<SelectorIndex>(out.peer_selectors);
      }
      out.num_peer_classes = uint32_t(out.peer_signatures.size());
      done = true;
    }
  }
  if (!done) {
    out.peer_index = std::make_shared<SelectorIndex>(out.peer_selectors);
    const SelectorIndex& peer_index = *out.peer_index;
    std::vector<std::vector<uint32_t>> peer_sigs = {{}};
    absl::flat_hash_map<std::vector<uint32_t>, uint32_t> by_sig;
    by_sig[{}] = 0;
    std::vector<uint32_t> sig;
    for (const auto& [id, labels] : in.identities->all()) {
      peer_index.Match(labels, sig);
      auto [it, inserted] = by_sig.try_emplace(sig, uint32_t(peer_sigs.size()));
      if (inserted) peer_sigs.push_back(sig);
      if (it->second != 0) out.peer_class_of[id] = it->second;
    }
    auto renum = SortedRenumbering(peer_sigs);
    for (auto& [id, c] : out.peer_class_of) c = renum[c];
    for (uint32_t c = 1; c < peer_sigs.size(); ++c) {
      out.peer_class_by_signature[peer_sigs[c]] = renum[c];
    }
    out.peer_signatures.resize(peer_sigs.size());
    for (uint32_t c = 0; c < peer_sigs.size(); ++c) {
      out.peer_signatures[renum[c]] = std::move(peer_sigs[c]);
    }
    out.num_peer_classes = uint32_t(out.peer_signatures.size());
  }
  const auto& peer_sigs = out.peer_signatures;
  std::vector<std::vector<uint32_t>> classes_of_peer_sel(out.peer_selectors.size());
  for (uint32_t c = 1; c < peer_sigs.size(); ++c) {
    for (uint32_t s : peer_sigs[c]) classes_of_peer_sel[s].push_back(c);
  }

  // 3. Subject classes over the local endpoints: same selecting subjects and
  // same (policy-relevant) named ports.
  using SubjectSig = std::pair<std::vector<uint32_t>, std::vector<identity::NamedPort>>;
  std::vector<SubjectSig> subject_sigs = {{}};
  {
    SelectorIndex subject_index(subject_sels);
    std::map<SubjectSig, uint32_t> by_sig;
    by_sig[{}] = 0;
    const identity::Labels empty;
    for (const auto& ep : in.endpoints) {
      const identity::Labels* l = in.identities->Find(ep.identity);
      SubjectSig sig;
      subject_index.Match(l ? *l : empty, sig.first);
      for (const auto& np : ep.named_ports) {
        if (ingress_port_names.contains(np.name)) sig.second.push_back(np);
      }
      std::sort(sig.second.begin(), sig.second.end());
      auto [it, inserted] = by_sig.try_emplace(sig, uint32_t(subject_sigs.size()));
      if (inserted) subject_sigs.push_back(sig);
      out.subject_class_of_endpoint.push_back(it->second);
    }
    // A class's key names it by content (selector strings, named ports),
    // not by the selectors' or classes' numbering.
    std::vector<uint64_t> keys;
    keys.reserve(subject_sigs.size());
    for (const auto& [sels, ports] : subject_sigs) {
      std::vector<std::string> parts;
      for (uint32_t sel : sels) parts.push_back(subject_sels[sel].ToString());
      std::sort(parts.begin(), parts.end());
      for (const auto& np : ports) {
        parts.push_back(meshgate::StrCat("port:", np.name, "/", unsigned(np.proto), "/", np.port));
      }
      keys.push_back(Fnv1a(parts));
    }
    // Numbering. From scratch: in signature order, so a selector's classes
    // form few ranges. From a previous compilation: a class it had keeps
    // its number and a new one comes after them all, so a new subject (a
    // new application and its policy) does not shift the numbers, and so
    // the rules, of the others (ACL partitions are reused by content,
    // acl_table.h). A number whose class is gone stays a hole (no
    // endpoint, no rule) until holes outnumber the classes.
    std::vector<uint32_t> renum = SortedRenumbering(subject_sigs);
    uint32_t num = uint32_t(subject_sigs.size());
    std::vector<uint64_t> hole_keys;
    if (const CompiledPolicy* prev = in.previous;
        prev != nullptr && !prev->subject_class_key.empty()) {
      absl::flat_hash_map<uint64_t, uint32_t> prev_num;
      for (uint32_t c = 0; c < prev->subject_class_key.size(); ++c) {
        prev_num.try_emplace(prev->subject_class_key[c], c);
      }
      std::vector<uint32_t> stable(subject_sigs.size());
      uint32_t next = uint32_t(prev->subject_class_key.size());
      std::vector<uint32_t> fresh;
      std::vector<bool> taken(next, false);
      bool clash = false;  // two classes on one number: a 64-bit key collision
      for (uint32_t c = 0; c < subject_sigs.size(); ++c) {
        auto it = prev_num.find(keys[c]);
        if (it != prev_num.end()) {
          stable[c] = it->second;
          clash |= taken[it->second];
          taken[it->second] = true;
        } else {
          fresh.push_back(c);
        }
      }
      std::sort(fresh.begin(), fresh.end(), [&](uint32_t x, uint32_t y) { return renum[x] < renum[y]; });
      for (uint32_t c : fresh) stable[c] = next++;
      if (!clash && next <= 2 * subject_sigs.size() && stable[0] == 0) {
        renum = std::move(stable);
        num = next;
        hole_keys = prev->subject_class_key;  // what a hole keeps (acl_table.h)
      }
    }
    for (auto& c : out.subject_class_of_endpoint) c = renum[c];
    std::vector<SubjectSig> sorted(num);
    out.subject_class_key.assign(num, 0);
    for (uint32_t c = 0; c < num && c < hole_keys.size(); ++c) out.subject_class_key[c] = hole_keys[c];
    for (uint32_t c = 0; c < subject_sigs.size(); ++c) {
      sorted[renum[c]] = std::move(subject_sigs[c]);
      out.subject_class_key[renum[c]] = keys[c];
    }
    subject_sigs = std::move(sorted);
    out.num_subject_classes = num;
  }
  std::vector<std::vector<uint32_t>> classes_of_subject_sel(subject_sels.size());
  out.enforced.assign(out.num_subject_classes, 0);
  for (uint32_t c = 0; c < subject_sigs.size(); ++c) {
    for (uint32_t s : subject_sigs[c].first) {
      classes_of_subject_sel[s].push_back(c);
      out.enforced[c] |= subject_dd[s];
    }
  }
  if (in.options.enforcement == EnforcementMode::kAlways) {
    std::fill(out.enforced.begin(), out.enforced.end(), 3);
  }
  if (in.options.enforcement == EnforcementMode::kNever) {
    std::fill(out.enforced.begin(), out.enforced.end(), 0);
    return out;  // nothing is enforced: no ACL rules at all
  }

  // 4. ACL rules. Deduplicated; the first (lowest rule id) occurrence wins.
  std::set<std::tuple<uint8_t, uint8_t, uint32_t, uint32_t, uint32_t, uint32_t, uint8_t,
                      uint16_t, uint16_t>>
      seen;
  auto emit = [&](AclRuleSpec r) {
    auto key = std::make_tuple(uint8_t(r.category), uint8_t(r.dir), r.subject_lo,
                               r.subject_hi, r.peer_lo, r.peer_hi, r.proto, r.port_lo,
                               r.port_hi);
    if (seen.insert(key).second) out.rules.push_back(r);
  };
  constexpr uint32_t kAny = std::numeric_limits<uint32_t>::max();
  for (const Entry& e : entries) {
    const PeerRule& pr = *e.pr;
    if (!pr.l3_present && !pr.l4_present) continue;  // `ingress: [{}]`: selects nothing
    Ranges peers;
    if (pr.AllPeers()) {
      peers.emplace_back(0, kAny);
    } else {
      std::vector<uint32_t> cls;
      for (const auto& s : pr.peers) {
        const auto& v = classes_of_peer_sel[peer_sel_idx.at(s.ToString())];
        cls.insert(cls.end(), v.begin(), v.end());
      }
      std::sort(cls.begin(), cls.end());
      cls.erase(std::unique(cls.begin(), cls.end()), cls.end());
      peers = ToRanges(cls);
    }
    if (peers.empty()) continue;
    const auto& subjects = classes_of_subject_sel[e.subject_sel];
    // Named ports resolve per subject class at ingress; group classes whose
    // resolved port lists are equal so they still form ranges.
    std::map<std::vector<PortMatch>, std::vector<uint32_t>> by_ports;
    for (uint32_t c : subjects) {
      by_ports[ResolvePorts(pr, e.dir, subject_sigs[c].second, in.mesh_named_ports)]
          .push_back(c);
    }
    for (const auto& [ports, cls] : by_ports) {
      for (const auto& [slo, shi] : ToRanges(cls)) {
        for (const auto& [plo, phi] : peers) {
          for (const auto& pm : ports) {
            AclRuleSpec r;
            r.category = e.deny ? AclRuleSpec::kDeny : AclRuleSpec::kAllow;
            r.dir = e.dir;
            r.subject_lo = slo;
            r.subject_hi = shi;
            r.peer_lo = plo;
            r.peer_hi = phi;
            r.proto = pm.proto;
            r.port_lo = pm.lo;
            r.port_hi = pm.hi;
            r.rule_id = e.rule_id;
            emit(r);
          }
        }
      }
    }
  }
  if (localhost_rule != 0) {
    for (const auto& [plo, phi] : ToRanges(classes_of_peer_sel[host_sel])) {
      AclRuleSpec r;
      r.category = AclRuleSpec::kAllow;
      r.dir = Direction::kIngress;
      r.subject_lo = 0;
      r.subject_hi = kAny;
      r.peer_lo = plo;
      r.peer_hi = phi;
      r.proto = 0;
      r.port_lo = 0;
      r.port_hi = 65535;
      r.rule_id = localhost_rule;
      emit(r);
    }
  }
  return out;
}

}  // namespace meshgate::classifier
