#!/usr/bin/env python3
"""The fidelity table from the runs `scripts/fidelity.sh runs` made (run by `fidelity.sh report`).

For each case: the medians of QEMU's runs (`run --qemu`), autoconv's VMM's runs (`run --kvm`),
and simulations with the case's guest and parameters: the shared reference scenario as shipped
(`scenarios/qemu-7.2-reference.toml`, costs fitted to the shared QEMU 7.2 trace), the same
given each backend's write rate and link measured in these runs, and a sweep driven by each
backend's measured throttle curve (`throttle_curve`).
Writes RESULTS/NAME.md, RESULTS/NAME.csv (one row per case and column), RESULTS/NAME-runs.csv
(one row per run) and the measured throttle curves RESULTS/NAME-profile-*.csv (NAME: env
REPORT_NAME, default fidelity).
"""

import csv
import json
import os
import statistics
import subprocess
import sys
from collections import Counter

BIN = os.environ.get("AUTOCONV", "target/release/autoconv")
RUNS_DIR = os.environ.get("RUNS_DIR", "/var/tmp/autoconv-fidelity")
RESULTS = os.environ.get("RESULTS", "results")
NAME = os.environ.get("REPORT_NAME", "fidelity")
CASES = os.environ.get("CASES", "ref i50s25 i5s5 tailslow wss32 bw256 wss1g bw0").split()
SCENARIO = "scenarios/qemu-7.2-reference.toml"
PROFILE_SCENARIO = "scenarios/fidelity-sequential.toml"

# What each case is: a label, the guest (memory, working set) and the parameters beyond the
# shared reference's (which fidelity.sh sets on every run: auto-converge on, downtime-limit 300,
# threshold 50, QEMU 7.2's rules). Kept in step with fidelity.sh's case_def.
CASE_INFO = {
    "ref": ("shared reference: 64 MiB/s, 20/10", "512MiB", "256MiB",
            ["max-bandwidth=64MiB/s", "cpu-throttle-initial=20", "cpu-throttle-increment=10"]),
    "i50s25": ("64 MiB/s, 50/25", "512MiB", "256MiB",
               ["max-bandwidth=64MiB/s", "cpu-throttle-initial=50", "cpu-throttle-increment=25"]),
    "i5s5": ("64 MiB/s, 5/5", "512MiB", "256MiB",
             ["max-bandwidth=64MiB/s", "cpu-throttle-initial=5", "cpu-throttle-increment=5"]),
    "tailslow": ("64 MiB/s, 20/10, tailslow", "512MiB", "256MiB",
                 ["max-bandwidth=64MiB/s", "cpu-throttle-initial=20",
                  "cpu-throttle-increment=10", "cpu-throttle-tailslow=on"]),
    "wss32": ("32 MiB working set, 64 MiB/s", "512MiB", "32MiB",
              ["max-bandwidth=64MiB/s", "cpu-throttle-initial=20", "cpu-throttle-increment=10"]),
    "bw256": ("256 MiB/s", "512MiB", "256MiB",
              ["max-bandwidth=256MiB/s", "cpu-throttle-initial=20", "cpu-throttle-increment=10"]),
    "wss1g": ("1 GiB working set, 1.5 GiB guest, 256 MiB/s", "1536MiB", "1GiB",
              ["max-bandwidth=256MiB/s", "cpu-throttle-initial=20", "cpu-throttle-increment=10"]),
    "bw0": ("max-bandwidth=0 (unlimited)", "512MiB", "256MiB",
            ["max-bandwidth=0", "cpu-throttle-initial=20", "cpu-throttle-increment=10"]),
}
BACKENDS = ["qemu", "kvm"]
NAMES = {"qemu": "QEMU 7.2", "kvm": "autoconv VMM"}


def read_runs():
    loads = {}
    path = os.path.join(RUNS_DIR, "loads.csv")
    if os.path.exists(path):
        with open(path) as f:
            for row in csv.reader(f):
                if len(row) >= 6:
                    loads[(row[0], row[1], row[2])] = (row[3], row[4].split()[0])
    runs = []
    for case in CASES:
        cdir = os.path.join(RUNS_DIR, case)
        if not os.path.isdir(cdir):
            continue
        for name in sorted(os.listdir(cdir)):
            sp = os.path.join(cdir, name, "summary.json")
            if not os.path.exists(sp):
                continue
            backend, rnd = name.rsplit("-", 1)
            with open(sp) as f:
                s = json.load(f)
            ts = []
            tp = os.path.join(cdir, name, "timeseries.csv")
            if os.path.exists(tp):
                with open(tp) as f:
                    ts = list(csv.DictReader(f))
            when, load = loads.get((case, backend, rnd), ("", ""))
            runs.append({
                "case": case, "backend": backend, "round": int(rnd), "when": when,
                "load1": load, "status": s["status"],
                "total_s": s["total_time_ms"] / 1000.0, "downtime_ms": s["downtime_ms"],
                "syncs": s["dirty_sync_count"], "transferred_gib": s["transferred_bytes"] / 2**30,
                "steps": " ".join(str(x) for x in s["throttle_steps"]),
                "rate_before": s.get("guest", {}).get("write_pages_s_before") or 0.0,
                # h in transferred = normal x (4096 + h) + zero x (h + 1), as the sim counts.
                "header_bytes": (s["transferred_bytes"] - 4096 * s["normal_pages"]
                                 - s["zero_pages"]) / (s["normal_pages"] + s["zero_pages"])
                if s.get("normal_pages") else None,
                "timeseries": ts,
            })
    return runs


def host_costs(runs, backend):
    """What one migration stream and its destination manage on this host under `backend`: the
    highest `mbps` of its max-bandwidth=0 runs (the simulated link of its calibrated runs)."""
    mbps = [float(row["mbps"]) for r in runs if r["backend"] == backend and r["case"] == "bw0"
            for row in r["timeseries"]]
    # Bytes a page carries beyond its 4096 on this backend's wire (QEMU 8, autoconv's VMM 4):
    # at 256 MiB/s it decides at which window a pass ends (link.page_header_bytes).
    headers = [r["header_bytes"] for r in runs if r["backend"] == backend and r["header_bytes"]]
    return {"link_bytes_s": int(max(mbps) * 1e6 / 8) if mbps else None,
            "page_header_bytes": max(0, round(statistics.median(headers))) if headers else None}


CALIBRATION_CASES = ("ref", "i50s25", "i5s5", "tailslow")


def throttle_curve(runs, backend):
    """How fast the guest really wrote at each throttle level under `backend`, while migrating.

    From every poll of the backend's 256 MiB, 64 MiB/s runs (CALIBRATION_CASES): the guest's own
    page writes/s (its COM1 markers: one per sweep of the working set) at each
    `cpu-throttle-percentage` in force, pooled over the level's polls (total writes / total
    time; a level needs 10 polls, 1 s). Throttle 0 here is with dirty logging on. This holds
    the host's costs the simulator's own model does not know: dirty logging's slowdown, and how
    much CPU a throttled vCPU really got on this host (QEMU's timer-driven throttle and the
    VMM's both let a vCPU run past its share when the host is busy).
    """
    acc = {}
    for r in runs:
        if r["backend"] != backend or r["case"] not in CALIBRATION_CASES:
            continue
        prev_t = None
        for row in r["timeseries"]:
            t = float(row["t_ms"])
            if row["status"] == "active" and prev_t is not None:
                p = int(float(row["throttle_pct"]))
                w, n = acc.get(p, (0.0, 0))
                acc[p] = (w + float(row["guest_write_pages_s"]) * (t - prev_t) / 1000.0,
                          n + 1)
            prev_t = t
    curve = []
    for p in sorted(acc):
        writes, polls = acc[p]
        if polls >= 10:
            curve.append((p, writes / (polls * 0.1), polls))
    return curve


def write_profile(path, backend, curve, host, wss_pages):
    """The curve as a profile CSV a `pattern = "profile"`, `profile_access = "sequential"`
    region takes: for a sweep the profile's rate is the page writes/s themselves. The rows say
    1 ms intervals: over 1 ms the sweep (at most ~10K pages) never wraps its working set, so
    every write there is a distinct page, as the profile format means; for a working set under
    that (32 MiB is 8192 pages) a rate is capped at one sweep per ms."""
    model = host.split(",")[0] if host else ""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["throttle_pct", "dirty_pages_s", "interval_ms", "guest_write_pages_s",
                    "syncs", "page_size_bytes", "vcpus", "source", "host_cpu_model"])
        for p, rate, polls in curve:
            rate = min(rate, wss_pages * 1000.0 - 1)
            w.writerow([p, "%.1f" % rate, 1, "%.1f" % rate, polls, 4096, 1,
                        "%s:fidelity runs (%s)" % (backend, " ".join(CALIBRATION_CASES)), model])


def simulate(case, rate, costs, profile=None):
    _, mem, wss, params = CASE_INFO[case]
    sets = ["guest.memory=" + mem, "region.sweep.size=" + wss] + params + [
        "auto-converge=on", "downtime-limit=300", "throttle-trigger-threshold=50",
        "autoconv.qemu_version=7.2", "autoconv.time_limit_s=300"]
    if rate:
        sets.append("region.sweep.write_rate_pages_s=%d" % rate)
    if costs:
        if costs["link_bytes_s"] is not None:
            sets.append("link.bandwidth=%d" % costs["link_bytes_s"])
        if costs.get("page_header_bytes") is not None:
            sets.append("link.page_header_bytes=%d" % costs["page_header_bytes"])
    scenario = SCENARIO
    if profile:
        scenario = PROFILE_SCENARIO
        sets = [x for x in sets if not x.startswith("region.sweep.write_rate")]
        sets.append("region.sweep.profile=" + profile)
    cmd = [BIN, "sim", scenario, "--json", "--no-out"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit("fidelity_report: %s failed: %s" % (" ".join(cmd), out.stderr.strip()))
    s = json.loads(out.stdout)
    if s["total_time_ms"] is None:
        s["total_time_ms"] = s["elapsed_ms"]
    return {
        "status": s["status"], "total_s": s["total_time_ms"] / 1000.0,
        "downtime_ms": s["downtime_ms"], "syncs": s["dirty_sync_count"],
        "transferred_gib": s["transferred_bytes"] / 2**30,
        "steps": " ".join(str(x) for x in s["throttle_steps"]),
        "n": "sim", "cmd": "autoconv sim " + scenario + " " + " ".join("--set " + x for x in sets),
    }


def median_of(rs):
    # The throttle sequence of the median run (by total time), and how many runs share it.
    by_time = sorted(rs, key=lambda r: r["total_s"])
    median_steps = by_time[(len(by_time) - 1) // 2]["steps"]
    steps = (median_steps, sum(1 for r in rs if r["steps"] == median_steps))
    status = Counter(r["status"] for r in rs).most_common(1)[0][0]
    return {
        "status": status,
        "total_s": statistics.median(r["total_s"] for r in rs),
        "downtime_ms": statistics.median(r["downtime_ms"] for r in rs
                                         if r["downtime_ms"] is not None)
        if any(r["downtime_ms"] is not None for r in rs) else None,
        "syncs": statistics.median(r["syncs"] for r in rs),
        "transferred_gib": statistics.median(r["transferred_gib"] for r in rs),
        "steps": steps[0], "steps_count": steps[1],
        "rate_before": statistics.median(r["rate_before"] for r in rs),
        "totals": [r["total_s"] for r in rs],
        "n": len(rs),
    }


def pct(a, b):
    return "%+.0f%%" % ((a - b) * 100.0 / b) if b else "-"


def steps_text(s):
    if not s:
        return "none"
    xs = s.split()
    if len(xs) > 6:
        return "%s, %s, %s … %s (%d)" % (xs[0], xs[1], xs[2], xs[-1], len(xs))
    return ", ".join(xs)


def main():
    runs = read_runs()
    if not runs:
        sys.exit("fidelity_report: no runs under %s (run scripts/fidelity.sh runs first)" % RUNS_DIR)
    costs = {b: host_costs(runs, b) for b in BACKENDS}
    host = ""
    hp = os.path.join(RUNS_DIR, "host.txt")
    if os.path.exists(hp):
        with open(hp) as f:
            lines = f.read().split("\n")
        host = "%s, %s logical CPUs; %s" % (lines[0], lines[1], lines[3] if len(lines) > 3 else "")
    curves, profiles = {}, {}
    os.makedirs(RESULTS, exist_ok=True)
    for b in BACKENDS:
        curves[b] = throttle_curve(runs, b)
        if curves[b] and curves[b][0][0] == 0:
            profiles[b] = os.path.join(RESULTS, NAME + "-profile-%s.csv" % b)
            write_profile(profiles[b], b, curves[b], host, 65536)
            small = os.path.join(RESULTS, NAME + "-profile-%s-wss32.csv" % b)
            write_profile(small, b, curves[b], host, 8192)
    rows = []
    for case in CASES:
        per = {}
        for b in BACKENDS:
            rs = [r for r in runs if r["case"] == case and r["backend"] == b]
            if rs:
                per[b] = median_of(rs)
        if not per:
            continue
        shipped = simulate(case, None, None)
        sims = {b: simulate(case, per[b]["rate_before"], costs[b]) for b in per}
        curve_sims = {b: simulate(case, None, costs[b], profiles[b].replace(
            ".csv", "-wss32.csv") if case == "wss32" else profiles[b])
            for b in per if b in profiles}
        sims.update({"curve-" + b: v for b, v in curve_sims.items()})
        rows.append((case, per, shipped, sims))

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, NAME + "-runs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "backend", "round", "logged_utc", "load1", "status", "total_time_s",
                    "downtime_ms", "dirty_syncs", "transferred_gib", "throttle_steps",
                    "guest_write_pages_s_before"])
        for r in runs:
            w.writerow([r["case"], r["backend"], r["round"], r["when"], r["load1"], r["status"],
                        "%.2f" % r["total_s"], r["downtime_ms"], r["syncs"],
                        "%.3f" % r["transferred_gib"], r["steps"], "%.0f" % r["rate_before"]])
    with open(os.path.join(RESULTS, NAME + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "column", "runs", "status", "total_time_s", "downtime_ms",
                    "dirty_syncs", "transferred_gib", "throttle_steps"])
        for case, per, shipped, sims in rows:
            cols = [("qemu", per.get("qemu")), ("kvm", per.get("kvm")),
                    ("sim-shipped", shipped)] + [("sim-" + b, sims[b]) for b in sims]
            for name, c in cols:
                if c is None:
                    continue
                w.writerow([case, name, c["n"], c["status"], "%.2f" % c["total_s"],
                            c["downtime_ms"], c["syncs"], "%.3f" % c["transferred_gib"],
                            c["steps"]])

    loads = [float(r["load1"]) for r in runs if r["load1"]]
    ag = os.path.join(RUNS_DIR, "autogroup.txt")
    autogroup = open(ag).read().strip() if os.path.exists(ag) else ""
    md = []
    md.append("# Fidelity: sim, autoconv's VMM and QEMU 7.2")
    md.append("")
    md.append("Made by `scripts/fidelity.sh` (runs, then `scripts/fidelity_report.py`); every run "
              "is in `fidelity-runs.csv`, the medians in `fidelity.csv`.")
    md.append("")
    md.append("- Host: %s" % host)
    if loads:
        md.append("- Load average (1 min) at each run's start: median %.1f, from %.1f to %.1f "
                  "(other engineers' builds ran at nice 19 beside these runs, each in its own "
                  "session's autogroup; these runs' autogroup: %s)"
                  % (statistics.median(loads), min(loads), max(loads),
                     autogroup or "not raised, an equal share"))
        # A backend may have been re-run in another session (the runs of the other resumed):
        # say when each one's runs were taken and under what load.
        for b in BACKENDS:
            bl = [float(r["load1"]) for r in runs if r["backend"] == b and r["load1"]]
            when = sorted(r["when"] for r in runs if r["backend"] == b and r["when"])
            if bl and when:
                md.append("  - %s: %d runs from %s to %s, load median %.1f (%.1f to %.1f)"
                          % (NAMES[b], len(bl), when[0], when[-1], statistics.median(bl),
                             min(bl), max(bl)))
    md.append("- Workload: `autoconv guest build --pattern sequential --wss W` (W = 256 MiB "
              "unless the case says), 1 vCPU, every run: auto-converge on, downtime-limit 300, "
              "throttle-trigger-threshold 50, 4 s warm-up (after the first COM1 marker under "
              "QEMU), QEMU 7.2's rules")
    for b in BACKENDS:
        c = costs[b]
        md.append("- %s's link, measured: %s MB/s (the highest `mbps` at max-bandwidth=0); "
                  "%s bytes beyond 4096 per page on its wire (h in transferred = normal x (4096 + h) "
                  "+ zero x (h + 1), median of the runs)"
                  % (NAMES[b], "%.0f" % (c["link_bytes_s"] / 1e6) if c["link_bytes_s"] else "-",
                     c["page_header_bytes"] if c["page_header_bytes"] is not None else "-"))
    md.append("")
    md.append("What the guest really wrote while migrating, at each throttle in force (page "
              "writes/s from its COM1 markers, pooled over the polls of the 256 MiB, 64 MiB/s "
              "runs; share = of the rate at throttle 0 during the migration; `-` = level not "
              "held 1 s):")
    md.append("")
    before = {b: statistics.median([r["rate_before"] for r in runs if r["backend"] == b
                                    and r["case"] in CALIBRATION_CASES] or [0]) for b in BACKENDS}
    levels = sorted({p for b in BACKENDS for p, _, _ in curves[b]})
    md.append("| throttle % | " + " | ".join(str(p) for p in levels) + " |")
    md.append("|---" * (len(levels) + 1) + "|")
    for b in BACKENDS:
        cur = {p: rate for p, rate, _ in curves[b]}
        base = cur.get(0)
        cells = []
        for p in levels:
            if p not in cur:
                cells.append("-")
            elif base:
                cells.append("%.2fM (%.0f%%)" % (cur[p] / 1e6, 100 * cur[p] / base))
            else:
                cells.append("%.2fM" % (cur[p] / 1e6))
        md.append("| %s (unthrottled before migrating: %.1fM) | %s |"
                  % (NAMES[b], before[b] / 1e6, " | ".join(cells)))
    md.append("")
    md.append("| case | column | runs | total time | vs QEMU | downtime | syncs | transferred "
              "| throttle steps |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for case, per, shipped, sims in rows:
        q = per.get("qemu")
        cols = [("QEMU 7.2 (`run --qemu`)", per.get("qemu")),
                ("autoconv VMM (`run --kvm`)", per.get("kvm")),
                ("sim, reference as shipped", shipped),
                ("sim, QEMU's rate and link", sims.get("qemu")),
                ("sim, VMM's rate and link", sims.get("kvm")),
                ("sim, QEMU's mean throttle curve", sims.get("curve-qemu")),
                ("sim, VMM's mean throttle curve", sims.get("curve-kvm"))]
        first = True
        for name, c in cols:
            if c is None:
                continue
            runs_txt = str(c["n"])
            if c["n"] != "sim" and c["steps_count"] != c["n"]:
                steps_note = " (%d of %d runs)" % (c["steps_count"], c["n"])
            else:
                steps_note = ""
            total = "%.1f s" % c["total_s"]
            if c["n"] != "sim" and c["n"] > 1:
                total += " (%s)" % ", ".join("%.1f" % t for t in sorted(c["totals"]))
            if c["status"] != "completed":
                total += " " + c["status"]
            vs = "" if (q is None or c is q) else pct(c["total_s"], q["total_s"])
            md.append("| %s | %s | %s | %s | %s | %s | %g | %.2f GiB | %s%s |" % (
                CASE_INFO[case][0] if first else "", name, runs_txt, total, vs,
                "-" if c["downtime_ms"] is None else "%d ms" % c["downtime_ms"], c["syncs"], c["transferred_gib"], steps_text(c["steps"]),
                steps_note))
            first = False
    md.append("")
    md.append("In short (medians of the runs; the sim is `rate and link` with QEMU's "
              "measurements; throttle steps are the median run's, `=` the same as QEMU's):")
    md.append("")
    md.append("| case | QEMU 7.2 | autoconv VMM | sim | syncs Q / V / S | throttle steps "
              "(QEMU) | VMM | sim |")
    md.append("|---|---|---|---|---|---|---|---|")
    for case, per, shipped, sims in rows:
        q, v, sm = per.get("qemu"), per.get("kvm"), sims.get("qemu")

        def cell(c):
            if c is None:
                return "-"
            t = "%.1f s" % c["total_s"]
            if c["status"] != "completed":
                t += " " + c["status"]
            if q is not None and c is not q:
                t += " (%s)" % pct(c["total_s"], q["total_s"])
            return t

        def same(c):
            if c is None or q is None:
                return "-"
            t = "=" if c["steps"] == q["steps"] else steps_text(c["steps"])
            if c["n"] != "sim" and c["steps_count"] != c["n"]:
                t += " (%d of %d runs)" % (c["steps_count"], c["n"])
            return t

        md.append("| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s |" % (
            CASE_INFO[case][0], cell(q), cell(v), cell(sm),
            "%g" % q["syncs"] if q else "-", "%g" % v["syncs"] if v else "-",
            "%g" % sm["syncs"] if sm else "-",
            (steps_text(q["steps"]) + ("" if q["steps_count"] == q["n"] else " (%d of %d runs)"
                                       % (q["steps_count"], q["n"]))) if q else "-",
            same(v), same(sm)))
    md.append("")
    md.append("The simulations: `sim, reference as shipped` is `%s` with the case's guest and "
              "parameters (its costs were fitted to the shared QEMU 7.2 trace: 59M page writes/s, "
              "3.1 us per write-protect fault, a 2.1 GB/s link); `rate and link` replaces its write "
              "rate by the backend's measured unthrottled rate in the case's runs and its link by "
              "the backend's measured one; `mean throttle curve` drives the sweep by the table "
              "above instead (`%s-profile-qemu.csv`, `%s-profile-kvm.csv`, through "
              "`scenarios/fidelity-sequential.toml`):" % (SCENARIO, NAME, NAME))
    md.append("")
    md.append("```")
    for case, per, shipped, sims in rows:
        for b in sims:
            md.append(sims[b]["cmd"])
    md.append("```")
    with open(os.path.join(RESULTS, NAME + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
