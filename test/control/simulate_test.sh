#!/bin/bash
# End-to-end: `meshgate simulate` on the shipped scenarios, the shared ones,
# and files that must fail (wrong expectations, bad input).
# Usage: simulate_test.sh MESHGATE SOURCE_ROOT
set -u
mg=$1
src=$2
shared=${MESHGATE_SHARED:-$src/../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../lib/check.sh"

# 1. Every shipped scenario passes, each probe through the pipelines.
for f in "$src"/test/scenarios/*.yaml; do
  out=$("$mg" simulate "$f" 2>&1); rc=$?
  n=$(grep -c '^PASS' <<<"$out")
  check "$(basename "$f") passes (rc=$rc): $(grep -v '^PASS' <<<"$out")" [ $rc -eq 0 ]
  check "$(basename "$f") ran probes" [ "$n" -gt 0 ]
  check "$(basename "$f") last line" grep -qx "$n passed, 0 failed" <<<"$(tail -n 1 <<<"$out")"
done
# The shipped seed walkthrough is the shared one.
if [ -f "$shared/scenarios/seed-walkthrough.yaml" ]; then
  check "seed copy is current" cmp -s "$shared/scenarios/seed-walkthrough.yaml" "$src/test/scenarios/seed-walkthrough.yaml"
  out=$("$mg" simulate "$shared"/scenarios/*.yaml 2>&1); rc=$?
  check "shared scenarios pass (rc=$rc): $(tail -n 3 <<<"$out")" [ $rc -eq 0 ]
fi

# 2. Wrong expectations fail, each for its own reason.
base=$src/test/scenarios/seed-walkthrough.yaml
sed -e '0,/servedBy: cluster1}/s//servedBy: cluster2}/' "$base" > "$tmp/served.yaml"
sed -e '0,/expect: deny, dropReason: policy-denied, droppedBy: cluster1}/s//expect: allow}/' "$base" > "$tmp/verdict.yaml"
sed -e '0,/dropReason: policy-denied, droppedBy: cluster1}/s//dropReason: policy-deny, droppedBy: cluster1}/' "$base" > "$tmp/reason.yaml"
sed -e '0,/dropReason: policy-denied, droppedBy: cluster2}/s//dropReason: policy-denied, droppedBy: cluster1}/' "$base" > "$tmp/by.yaml"
for m in served verdict reason by; do
  out=$("$mg" simulate "$tmp/$m.yaml" 2>&1); rc=$?
  check "$m mutation fails (rc=$rc)" [ $rc -eq 1 ]
  check "$m mutation: one FAIL line" [ "$(grep -c '^FAIL' <<<"$out")" -eq 1 ]
  check "$m mutation: totals" grep -qx "25 passed, 1 failed" <<<"$(tail -n 1 <<<"$out")"
done

# 3. --json: one object per probe with the contract's fields.
out=$("$mg" simulate --json "$tmp/verdict.yaml" 2>/dev/null); rc=$?
check "json rc" [ $rc -eq 1 ]
check "json lines" [ "$(grep -c '^{' <<<"$out")" -eq 26 ]
for k in step from to port protocol expect got servedBy backend dropReason droppedBy pass; do
  check "json has $k" grep -q "\"$k\":" <<<"$(head -n 1 <<<"$out")"
done
check "json failing probe" grep -q '"expect":"allow","got":"deny".*"droppedBy":"cluster1","pass":false' <<<"$out"
if command -v python3 >/dev/null; then
  check "json parses" python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <<<"$out"
fi

# 4. Bad input: a clear error with file:line, exit 2, nothing run.
printf 'name: x\nclusters: [{name: c1, id: 1}\n' > "$tmp/yaml.yaml"
out=$("$mg" simulate "$tmp/yaml.yaml" 2>&1); rc=$?
check "invalid YAML rc=$rc" [ $rc -eq 2 ]
check "invalid YAML says where: $out" grep -q "yaml.yaml:[0-9]*: invalid YAML" <<<"$out"
cat > "$tmp/keys.yaml" <<'Y'
name: keys
futureKey: 1
clusters: [{name: c1, id: 300}]
endpoints:
  - {name: a, cluster: c9, ipv4: 10.0.0.1}
  - {name: b, cluster: c1, ipv4: not-an-ip}
steps:
  - probes: [{from: c1/a, to: c1/b, protocol: HTTP, expect: maybe}]
Y
out=$("$mg" simulate "$tmp/keys.yaml" 2>&1); rc=$?
check "bad keys rc=$rc" [ $rc -eq 2 ]
check "unknown key is a warning" grep -q 'keys.yaml:2: warning: scenario: unknown key "futureKey" ignored' <<<"$out"
check "cluster id range" grep -q "keys.yaml:3: .*id: 300 (expected 1..255)" <<<"$out"
check "unknown cluster" grep -q 'keys.yaml:5: .*unknown cluster "c9"' <<<"$out"
check "bad address" grep -q 'keys.yaml:6: .*"not-an-ip" is not an IPv4 address' <<<"$out"
check "bad protocol" grep -q 'keys.yaml:8: .*protocol: "HTTP"' <<<"$out"
check "bad expect" grep -q 'keys.yaml:8: .*expect: "maybe"' <<<"$out"
# An unsupported policy is refused with its line; the file is not run.
cat > "$tmp/l7.yaml" <<'Y'
name: l7
clusters: [{name: c1, id: 1}]
endpoints: [{name: a, cluster: c1, ipv4: 10.0.0.1}]
manifests:
  - cluster: c1
    yaml: |
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: l7}
      spec:
        endpointSelector: {}
        ingress:
          - toPorts:
              - ports: [{port: "80", protocol: TCP}]
                rules: {http: [{method: GET}]}
steps:
  - probes: [{from: c1/a, to: "ip:10.0.0.1", port: 80, expect: allow}]
Y
out=$("$mg" simulate "$tmp/l7.yaml" 2>&1); rc=$?
check "L7 refused rc=$rc" [ $rc -eq 2 ]
check "L7 refused with line: $out" grep -q "l7.yaml:15: .*rules" <<<"$out"
check "L7 counted failed" grep -qx "0 passed, 1 failed" <<<"$(tail -n 1 <<<"$out")"
# More ports than the DPDK build has: a clear error, no crash.
{
  echo "name: big"; echo "clusters: [{name: c1, id: 1}]"; echo "endpoints:"
  for i in $(seq 1 40); do echo "  - {name: e$i, cluster: c1, ipv4: 10.0.1.$i}"; done
  echo "steps: [{probes: [{from: c1/e1, to: c1/e2, port: 80, expect: allow}]}]"
} > "$tmp/big.yaml"
out=$("$mg" simulate "$tmp/big.yaml" 2>&1); rc=$?
check "too many ports rc=$rc" [ $rc -eq 2 ]
check "too many ports says why: $out" grep -q "needs 40 ports" <<<"$out"
# A missing file.
out=$("$mg" simulate "$tmp/none.yaml" 2>&1); rc=$?
check "missing file rc=$rc" [ $rc -eq 2 ]
# Several files: totals add up; one bad file does not stop the others.
out=$("$mg" simulate "$base" "$tmp/verdict.yaml" 2>&1); rc=$?
check "two files: totals" grep -qx "51 passed, 1 failed" <<<"$(tail -n 1 <<<"$out")"

finish simulate_test
