#!/bin/bash
# The benchmark harness end to end in its smoke mode: every step runs, every
# link profile reports meshgate beside dpdk-testpmd, the report and the plots
# are written. (Numbers are not asserted: this machine is shared; see
# docs/benchmarks.md for measured figures.)
# Usage: bench_harness_test.sh SOURCE_ROOT BUILD_ROOT
set -u
src=$1
export MG_BUILD=$2
out=$(mktemp -d /tmp/meshgate-bench-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
source "$(dirname "$0")/lib/check.sh"
log=$("$src/scripts/bench/run" --smoke --no-setup --out "$out" 2>&1); rc=$?
check "harness rc=$rc: $(tail -5 <<<"$log")" [ $rc -eq 0 ]
check "progress shown" grep -q "\[11/11\] meshgate bench link" <<<"$log"
if command -v pktgen >/dev/null; then
  check "pktgen run said" grep -q "pktgen found: running the Lua profiles" <<<"$log"
else
  check "pktgen absence said" grep -q "pktgen not on PATH" <<<"$log"
fi
for p in established new-conn deny service ipv6 fabric; do
  check "profile $p measured with a testpmd baseline" python3 - "$out/raw.jsonl" "$p" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
p = sys.argv[2]
ok = [r for r in rows if r["name"].startswith("link_meshgate_mpps_" + p) and r["value"] > 0 and (r["baseline_value"] or 0) > 0]
sys.exit(0 if ok else 1)
PY
done
check "link ratios are the medians of alternating rounds" grep -q '"name": "link_meshgate_to_testpmd_ratio_established_3073flows", "value": [0-9.]*, "unit": "ratio (median of the rounds' "$out/raw.jsonl"
# The link's own cost, split from the pipeline's: plain forwarding on
# meshgate's ports in the same rounds (not for deny, which delivers nothing).
check "plain forwarding on meshgate's ports measured" python3 - "$out/raw.jsonl" <<'PY'
import json, sys
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
t = "established_3073flows"
need = ["link_ports_io_mpps_" + t, "link_ports_mac_mpps_" + t, "link_mac_to_testpmd_ratio_" + t,
        "link_pipeline_cycles_per_packet_" + t]
ok = all(n in rows for n in need) and rows[need[0]]["value"] > 0 and rows[need[1]]["value"] > 0
ok = ok and not any(n.startswith("link_ports_io_mpps_deny") for n in rows)
sys.exit(0 if ok else 1)
PY
# Busy cycles (poll iterations that received packets): each forwarder's
# cost per packet whatever the generator offers; the pipeline's is their
# difference. A forwarder's busy time cannot exceed the core's time.
check "busy cycles per packet of meshgate and of io on its ports" python3 - "$out/raw.jsonl" <<'PY'
import json, sys
rows = {r["name"]: r["value"] for r in map(json.loads, open(sys.argv[1]))}
t = "established_3073flows"
mg, io = rows.get("link_meshgate_busy_cycles_per_packet_" + t), rows.get("link_ports_io_busy_cycles_per_packet_" + t)
core = rows.get("link_meshgate_cycles_per_packet_" + t)
cap = rows.get("link_capacity_ratio_" + t)
ok = None not in (mg, io, core, cap) and 0 < io and 0 < mg <= core * 1.01 and 0 < cap
for who in ("meshgate", "testpmd"):
    v = rows.get(f"link_generator_refused_{who}_{t}")
    ok = ok and v is not None and 0 <= v < 1
sys.exit(0 if ok else 1)
PY
# Fabric: every tunnel frame decapsulated and delivered (a frame the
# fabric path refused would be a counted drop: a wrong VNI, port or node).
check "fabric frames delivered, none dropped" grep -q '"name": "link_meshgate_dropped_fabric_3073flows", "value": 0[,.]' "$out/raw.jsonl"
check "deny drops counted" grep -q '"name": "link_meshgate_dropped_deny", "value": [1-9]' "$out/raw.jsonl"
# The new-connection run stops before the table is full: none of its
# packets is a 155 (CT_MAP_INSERTION_FAILED) drop.
check "new connections not dropped" grep -q '"name": "link_meshgate_dropped_new-conn", "value": 0[,.]' "$out/raw.jsonl"
check "maglev figures" grep -q '"name": "maglev_table_build_ms_M16381_N100"' "$out/raw.jsonl"
check "pipeline figures" grep -q '"name": "pipeline_established_cycles_per_packet' "$out/raw.jsonl"
check "updates figures" grep -q '"name": "updates_in_place_per_second_' "$out/raw.jsonl"
check "report" grep -q "## Links, per profile" "$out/report.md"
check "report: the pipeline's cost on the link" grep -q "pipeline cycles/packet on the link" "$out/report.md"
for png in link_profiles link_flows link_rules maglev; do
  check "$png.png is a PNG" bash -c "head -c 8 '$out/$png.png' | od -An -tx1 | grep -q '89 50 4e 47'"
  check "$png in the report" grep -q "($png.png)" "$out/report.md"
done
finish bench_harness_test
