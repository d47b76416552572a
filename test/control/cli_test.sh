#!/bin/bash
# End-to-end: the real meshgate binary on real files.
# Usage: cli_test.sh MESHGATE SOURCE_ROOT
set -u
mg=$1
src=$2
shared=${MESHGATE_SHARED:-$src/../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib/check.sh"

# 1. Every shipped scenario (and the shared ones) is accepted.
files=("$src"/test/scenarios/*.yaml)
[ -d "$shared/scenarios" ] && files+=("$shared"/scenarios/*.yaml)
out=$("$mg" policy check "${files[@]}" 2>&1); rc=$?
check "policy check accepts scenarios (rc=$rc): $out" [ $rc -eq 0 ]
check "policy check counts" grep -q " 0 error(s)" <<<"$out"

# 2. Unsupported features are rejected with file:line, exit 1.
cat > "$tmp/bad.yaml" <<'Y'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{method: GET}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: example.com}]
Y
out=$("$mg" policy check "$tmp/bad.yaml" 2>&1); rc=$?
check "bad policy exits 1 (rc=$rc)" [ $rc -eq 1 ]
check "L7 rejected at line 9: $out" grep -q "bad.yaml:9: .*rules: not supported" <<<"$out"
check "toFQDNs rejected at line 17" grep -q "bad.yaml:17: .*toFQDNs: not supported" <<<"$out"

# 3. Missing file, no args, unknown command.
"$mg" policy check "$tmp/nope.yaml" >/dev/null 2>&1; check "missing file exits 1" [ $? -eq 1 ]
"$mg" policy check >/dev/null 2>&1; check "no file exits 2" [ $? -eq 2 ]
"$mg" frobnicate >/dev/null 2>&1; check "unknown command exits 2" [ $? -eq 2 ]
"$mg" --help | grep -q "policy check"; check "--help lists policy check" [ $? -eq 0 ]

# 4. explain names the rule, or the default.
cat > "$tmp/p.yaml" <<'Y'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: my-policy}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
Y
out=$("$mg" policy explain -f "$tmp/p.yaml" --subject app=myapp --peer app=frontend --peer-cluster cluster2 --port 80)
check "explain allow: $out" grep -q "verdict: FORWARDED" <<<"$out"
check "explain names rule" grep -q "CiliumNetworkPolicy default/my-policy rule 0 ingress\[0\]" <<<"$out"
out=$("$mg" policy explain -f "$tmp/p.yaml" --subject app=myapp --peer app=test --port 80)
check "explain deny 133: $out" grep -q "verdict: DROPPED (133 Policy denied)" <<<"$out"
out=$("$mg" policy explain -f "$tmp/p.yaml" --subject app=myapp --peer app=frontend --peer-cluster cluster2 --port 80 --cluster-name cluster1 --policy-default-local-cluster)
check "explain 1.19 scoping: $out" grep -q "DROPPED" <<<"$out"
out=$("$mg" policy explain -f "$tmp/p.yaml" --subject app=other --peer-entity world --port 80)
check "explain default allow: $out" grep -q "default allow" <<<"$out"

cat > "$tmp/cidr.yaml" <<'Y'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ext}
spec:
  endpointSelector: {matchLabels: {app: myapp}}
  ingress:
  - fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
Y
out=$("$mg" policy explain -f "$tmp/cidr.yaml" --subject app=myapp --peer-ip 203.0.113.7 --port 443)
check "explain by address, inside the CIDR: $out" grep -q "verdict: FORWARDED" <<<"$out"
check "explain by address shows its CIDR identity" grep -q "cidr:203.0.113.0/24" <<<"$out"
out=$("$mg" policy explain -f "$tmp/cidr.yaml" --subject app=myapp --peer-ip 203.0.113.200 --port 443)
check "explain by address, in the except: $out" grep -q "verdict: DROPPED" <<<"$out"
out=$("$mg" policy explain -f "$tmp/cidr.yaml" --subject app=myapp --peer-ip 198.51.100.1 --port 443)
check "explain by address, unknown is world: $out" grep -q "identity 2 (reserved:world)" <<<"$out"

# 5. bench classify --smoke --json: one well-formed JSON object per line.
out=$("$mg" bench classify --smoke --json 2>/dev/null); rc=$?
check "bench smoke exits 0 (rc=$rc)" [ $rc -eq 0 ]
lines=$(grep -c . <<<"$out")
check "bench prints lines ($lines)" [ "$lines" -ge 10 ]
bad=$(python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    o = json.loads(line)
    assert set(o) == {"name", "value", "unit", "baseline", "baseline_value"}, o
    assert isinstance(o["value"], (int, float))
    n += 1
print(n)' <<<"$out" 2>&1)
check "bench JSON well formed: $bad" [ "$bad" = "$lines" ]
check "bench has ratio to raw baseline" grep -q '"classify_ratio_to_raw_' <<<"$out"

# 6. bench pipeline: the breakdown runs by default, --no-breakdown leaves
#    them out; --no-hugepages runs the EAL on ordinary memory.
out=$("$mg" bench pipeline --smoke --json --only established 2>/dev/null); rc=$?
check "bench pipeline exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "bench pipeline: established figure" grep -q '"pipeline_established_cycles_per_packet_' <<<"$out"
check "bench pipeline: breakdown by default" grep -q '"pipeline_without_conntrack_' <<<"$out"
out=$("$mg" bench pipeline --smoke --json --only established --no-breakdown --no-hugepages 2>&1); rc=$?
check "bench pipeline --no-breakdown exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "bench pipeline --no-breakdown: established figure" grep -q '"pipeline_established_cycles_per_packet_' <<<"$out"
check "bench pipeline --no-breakdown: no breakdown" bash -c '! grep -q "without_conntrack" <<<"$1"' _ "$out"
check "bench pipeline --no-hugepages: ordinary memory" grep -q "EAL memory: ordinary" <<<"$out"

# 7. bench updates: identities and ipcache entries through the agent, in
# place (no snapshot published) beside the compiled-and-published baseline.
out=$("$mg" bench updates --smoke --json 2>/dev/null); rc=$?
check "bench updates exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "bench updates: rate beside its baseline" grep -Eq '"name": "updates_in_place_per_second_[^"]*", "value": [0-9.e+]+, "unit": "updates/s", "baseline": "compiled and published' <<<"$out"
check "bench updates: no snapshot for in-place updates" grep -q '"name": "updates_in_place_snapshots_published", "value": 0,' <<<"$out"
check "bench updates: unknown option refused" bash -c '! "$1" bench updates --bogus 2>/dev/null' _ "$mg"

finish cli_test
