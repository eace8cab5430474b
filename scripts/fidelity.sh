#!/usr/bin/env bash
# Fidelity: one workload image (autoconv's sequential sweep, the shared QEMU 7.2 reference's
# workload) migrated by real QEMU (`run --qemu`), by autoconv's VMM (`run --kvm`) and simulated
# (`sim`, given each backend's measured host costs), case by case.
#
#   scripts/fidelity.sh [runs|report|all]      (default: all)
#
# runs    migrates every case RUNS times under each backend, round by round (round 1 of every
#         case, then round 2, ...), so an interrupted run still leaves whole rounds. A run whose
#         directory already holds a summary.json is not run again: re-running resumes.
# report  reads the runs, fits each backend's host costs, simulates, and writes
#         results/fidelity.md and results/fidelity.csv (medians) and results/fidelity-runs.csv
#         (every run).
#
# Environment: AUTOCONV (default target/release/autoconv), RUNS (3), CASES (space-separated case
# names, default all: ref i50s25 i5s5 tailslow wss32 bw256 wss1g bw0), BACKENDS ("qemu kvm"),
# RUNS_DIR (where the run directories go, default /var/tmp/autoconv-fidelity; not committed),
# RESULTS (default results). Needs /dev/kvm, qemu-system-x86_64, jq and python3.
#
# Measure on a quiet machine: the vCPU, the migration thread and the destination share the
# host's cores, and the load at each run's start is recorded beside it. On a shared one, note
# that `nice` does not shield these runs: with the kernel's autogroup scheduling
# (/proc/sys/kernel/sched_autogroup_enabled = 1) each session gets an equal share whatever its
# processes' nice values, and a vCPU starved to 15% of a core converges early on any policy.
# So `runs` raises the autogroup nice of the session it runs in to AUTOGROUP_NICE (default -19;
# needs root; empty = leave it; start it with `setsid` to keep your shell out of it): other
# sessions still run, on what these runs leave.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
bin=${AUTOCONV:-target/release/autoconv}
runs=${RUNS:-3}
runs_dir=${RUNS_DIR:-/var/tmp/autoconv-fidelity}
results=${RESULTS:-results}
all_cases="ref i50s25 i5s5 tailslow wss32 bw256 wss1g bw0"
cases=${CASES:-$all_cases}
backends=${BACKENDS:-"qemu kvm"}

# Every case: image, -m, then the --set list beyond the common ones. The common ones are the
# shared reference's: auto-converge on, downtime-limit 300, threshold 50, QEMU 7.2's rules.
common=(--set auto-converge=on --set downtime-limit=300 --set throttle-trigger-threshold=50
    --set max-cpu-throttle=99 --set autoconv.qemu_version=7.2 --set autoconv.time_limit_s=300)
case_def() {
    case $1 in
    ref) echo "seq256.img 512MiB max-bandwidth=64MiB/s cpu-throttle-initial=20 cpu-throttle-increment=10" ;;
    i50s25) echo "seq256.img 512MiB max-bandwidth=64MiB/s cpu-throttle-initial=50 cpu-throttle-increment=25" ;;
    i5s5) echo "seq256.img 512MiB max-bandwidth=64MiB/s cpu-throttle-initial=5 cpu-throttle-increment=5" ;;
    tailslow) echo "seq256.img 512MiB max-bandwidth=64MiB/s cpu-throttle-initial=20 cpu-throttle-increment=10 cpu-throttle-tailslow=on" ;;
    wss32) echo "seq32.img 512MiB max-bandwidth=64MiB/s cpu-throttle-initial=20 cpu-throttle-increment=10" ;;
    bw256) echo "seq256.img 512MiB max-bandwidth=256MiB/s cpu-throttle-initial=20 cpu-throttle-increment=10" ;;
    wss1g) echo "seq1g.img 1536MiB max-bandwidth=256MiB/s cpu-throttle-initial=20 cpu-throttle-increment=10" ;;
    bw0) echo "seq256.img 512MiB max-bandwidth=0 cpu-throttle-initial=20 cpu-throttle-increment=10" ;;
    *)
        echo "fidelity.sh: unknown case $1 (cases: $all_cases)" >&2
        exit 2
        ;;
    esac
}

do_runs() {
    mkdir -p "$runs_dir"
    if [ -n "${AUTOGROUP_NICE--19}" ] && [ -w /proc/self/autogroup ]; then
        echo "${AUTOGROUP_NICE--19}" >/proc/self/autogroup
        echo "autogroup of this session: $(cat /proc/self/autogroup)"
        cat /proc/self/autogroup >"$runs_dir/autogroup.txt"
    fi
    [ -f "$runs_dir/seq256.img" ] || "$bin" guest build --pattern sequential --wss 256MiB -o "$runs_dir/seq256.img"
    [ -f "$runs_dir/seq32.img" ] || "$bin" guest build --pattern sequential --wss 32MiB -o "$runs_dir/seq32.img"
    [ -f "$runs_dir/seq1g.img" ] || "$bin" guest build --pattern sequential --wss 1GiB -o "$runs_dir/seq1g.img"
    # The host, once: CPU model and logical CPUs.
    {
        grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'
        nproc
        "$bin" --version 2>/dev/null || true
        qemu-system-x86_64 --version | head -1
    } >"$runs_dir/host.txt"
    for round in $(seq 1 "$runs"); do
        for c in $cases; do
            read -r -a def <<<"$(case_def "$c")"
            sets=()
            for p in "${def[@]:2}"; do sets+=(--set "$p"); done
            for b in $backends; do
                dir=$runs_dir/$c/$b-$round
                if [ -f "$dir/summary.json" ]; then continue; fi
                load=$(cut -d' ' -f1-3 /proc/loadavg)
                started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
                echo "== $started $c $b round $round (load $load)"
                rc=0
                "$bin" run --"$b" "$runs_dir/${def[0]}" --mem "${def[1]}" "${common[@]}" "${sets[@]}" \
                    --warmup 4s --after 1s --out "$dir" >"$runs_dir/$c.$b-$round.log" 2>&1 || rc=$?
                grep -E '^(migration|before migrating)' "$runs_dir/$c.$b-$round.log" || true
                echo "$c,$b,$round,$started,$load,$rc" >>"$runs_dir/loads.csv"
                if [ $rc -gt 1 ]; then
                    echo "fidelity.sh: $c $b round $round failed to start (exit $rc): see $runs_dir/$c.$b-$round.log" >&2
                fi
            done
        done
    done
}

do_report() {
    mkdir -p "$results"
    AUTOCONV=$bin RUNS_DIR=$runs_dir RESULTS=$results CASES="$cases" \
        python3 scripts/fidelity_report.py
}

case $mode in
runs) do_runs ;;
report) do_report ;;
all)
    do_runs
    do_report
    ;;
*)
    echo "usage: scripts/fidelity.sh [runs|report|all]" >&2
    exit 2
    ;;
esac
