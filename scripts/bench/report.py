#!/usr/bin/env python3
"""Aggregates a bench run (raw.jsonl) into report.md and gnuplot plots.

Usage: report.py RESULTS_DIR
raw.jsonl lines are meshgate's `--json` bench output plus "run" (repetition)
and "step" (which invocation) keys. Figures are medians over repetitions;
every figure is printed beside its same-run baseline when it has one.
"""
import json
import os
import platform
import statistics
import subprocess
import sys

out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "raw.jsonl")) if l.strip()]
meta = json.load(open(os.path.join(out, "meta.json")))

by_name = {}
for r in rows:
    by_name.setdefault(r["name"], []).append(r)


def med(name, key="value"):
    v = [r[key] for r in by_name.get(name, []) if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


lines = ["# meshgate benchmark report", ""]
lines += [f"- date (UTC): {meta['date']}", f"- host: {meta['cpu']}, {meta['cores']} cores, "
          f"{meta['memory']}; hugepages: {meta['hugepages']}", f"- DPDK: {meta['dpdk']}; meshgate: {meta['commit']}",
          f"- mode: {meta['mode']}; repetitions: {meta['reps']}; link seconds per run: {meta['seconds']}",
          f"- pktgen: {meta['pktgen']}", ""]
lines += ["Method: every figure is the median over the repetitions; each run of a link profile runs "
          "meshgate and then `dpdk-testpmd --forward-mode=io` on the same memif links in the same "
          "process run (generator and sink on core 0, forwarder on core 1), so the ratio is taken run "
          "by run. cycles/packet on links = core time / packets meshgate processed (an upper bound: it "
          "includes idle polling). Raw data: `raw.jsonl`.", ""]
lines += ["## All figures", "", "| figure | median | unit | baseline | baseline median | ratio |", "|---|---|---|---|---|---|"]
for name in sorted(by_name):
    v = med(name)
    b = med(name, "baseline_value")
    base = by_name[name][0].get("baseline") or ""
    ratio = fmt(v / b) if (v is not None and b) and base and "ratio" not in name else ""
    lines.append(f"| `{name}` | {fmt(v)} | {by_name[name][0]['unit']} | {base} | {fmt(b) if base else ''} | {ratio} |")
lines.append("")


def plot(png, title, ylabel, series, xlabels, style="histogram"):
    """series: [(label, [values per x])]"""
    dat = os.path.join(out, png.replace(".png", ".dat"))
    with open(dat, "w") as f:
        f.write("x " + " ".join(f'"{s[0]}"' for s in series) + "\n")
        for i, x in enumerate(xlabels):
            f.write(f'"{x}" ' + " ".join(fmt_num(s[1][i]) for s in series) + "\n")
    cols = " , ".join(f"'{dat}' using {j + 2}:xtic(1) title columnheader({j + 2})" for j in range(len(series)))
    script = f"""set terminal pngcairo size 900,500 noenhanced
set output '{os.path.join(out, png)}'
set title '{title}'
set ylabel '{ylabel}'
set grid ytics
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set key outside right
set yrange [0:*]
plot {cols}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print(f"report: gnuplot failed for {png}: {r.stderr.strip()}", file=sys.stderr)
        return None
    return png


def fmt_num(v):
    return "0" if v is None else f"{v:.6g}"


plots = []
profiles = meta["profiles"]
tags = {p: meta["profile_tags"][p] for p in profiles}
mg = [med(f"link_meshgate_mpps_{tags[p]}") for p in profiles]
tp = [med(f"link_meshgate_mpps_{tags[p]}", "baseline_value") for p in profiles]
if any(v is not None for v in mg):
    p = plot("link_profiles.png", "Mpps through memif links, meshgate vs dpdk-testpmd io (same run)",
             "Mpps", [("meshgate", mg), ("dpdk-testpmd io", tp)], profiles)
    if p:
        plots.append((p, "Link throughput per profile"))
    lines += ["## Links, per profile", "",
              "| profile | meshgate Mpps | testpmd io Mpps | ratio | meshgate's ports, io / mac Mpps | mac / testpmd | "
              "busy cycles/packet, meshgate / io | capacity ratio | pipeline cycles/packet on the link | "
              "generator refused, meshgate / testpmd | dropped by meshgate |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"
    for i, pr in enumerate(profiles):
        t = tags[pr]
        lines.append(f"| {pr} | {fmt(mg[i])} | {fmt(tp[i])} | {fmt(med('link_meshgate_to_testpmd_ratio_' + t))} | "
                     f"{fmt(med('link_ports_io_mpps_' + t))} / {fmt(med('link_ports_mac_mpps_' + t))} | "
                     f"{fmt(med('link_mac_to_testpmd_ratio_' + t))} | "
                     f"{fmt(med('link_meshgate_busy_cycles_per_packet_' + t))} / "
                     f"{fmt(med('link_ports_io_busy_cycles_per_packet_' + t))} | "
                     f"{fmt(med('link_capacity_ratio_' + t))} | "
                     f"{fmt(med('link_pipeline_cycles_per_packet_' + t))} | "
                     f"{pct(med('link_generator_refused_meshgate_' + t))} / "
                     f"{pct(med('link_generator_refused_testpmd_' + t))} | "
                     f"{fmt(med('link_meshgate_dropped_' + t))} |")
    lines += ["", "The deny profile delivers nothing by design: its Mpps is what meshgate processed (and dropped), "
              "and it has no plain-forwarding figures.",
              "meshgate's ports, io / mac: the same memif ports, pool and lcore forwarding with no pipeline (io: "
              "packets untouched, as testpmd's io mode; mac: both MAC addresses rewritten, as l2fwd), between "
              "meshgate's rounds. Busy cycles/packet: TSC cycles of the poll iterations that received packets, "
              "RX to TX, per packet (idle polling left out); capacity ratio = io's busy cycles over meshgate's "
              "(what each could carry, whatever the generator offers); pipeline cycles/packet on the link = "
              "meshgate's less io's. Generator refused: the share of the generator's packets that the forwarder's full "
              "ring turned away; a forwarder that is not refused kept up, and its rate is the generator's "
              "(docs/benchmarks.md).", ""]

for sweep, key in (("flows", "flow_sweep"), ("rules", "rule_sweep")):
    pts = meta.get(key) or []
    if not pts:
        continue
    vals = [med(f"link_meshgate_mpps_{t}") for _, t in pts]
    base = [med(f"link_meshgate_mpps_{t}", "baseline_value") for _, t in pts]
    p = plot(f"link_{sweep}.png", f"established flows: Mpps vs {sweep}", "Mpps",
             [("meshgate", vals), ("dpdk-testpmd io", base)], [str(x) for x, _ in pts])
    if p:
        plots.append((p, f"Established flows over {sweep}"))
    lines += [f"## Sweep over {sweep} (established)", "", f"| {sweep} | meshgate Mpps | testpmd io Mpps | ratio |", "|---|---|---|---|"]
    for (x, t), v, b in zip(pts, vals, base):
        lines.append(f"| {x} | {fmt(v)} | {fmt(b)} | {fmt(v / b) if v and b else '-'} |")
    lines.append("")

mag = sorted({r["name"] for r in rows if r["name"].startswith("maglev_table_build_ms_")})
if mag:
    sizes = sorted({n.split("_M")[1].split("_")[0] for n in mag}, key=int)
    backs = sorted({n.split("_N")[1] for n in mag}, key=int)
    series = [(f"M={m}", [med(f"maglev_table_build_ms_M{m}_N{n}") for n in backs]) for m in sizes]
    p = plot("maglev.png", "Maglev table generation (target: M=16381, 1000 backends <= 1 ms)", "ms", series,
             [f"{n} backends" for n in backs])
    if p:
        plots.append((p, "Maglev table generation"))

if plots:
    lines += ["## Plots", ""]
    for png, cap in plots:
        lines += [f"### {cap}", "", f"![{cap}]({png})", ""]
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print(f"report: {os.path.join(out, 'report.md')} ({len(rows)} figures, {len(plots)} plots)")
