#!/usr/bin/env bash
# The evidence table of results/policies.md: for every shipped scenario, QEMU's default
# staircase (20/10), the best fixed staircase a sweep finds, dirty-limit at its defaults and at
# its best quota, and autoconv's predictive policy. Simulated; deterministic.
#
#   bash results/policies.sh > results/policies.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/autoconv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The converged run with the lowest total time in a runs.csv, as a table row's last cells:
# label | total time | downtime | guest CPU lost | max throttle.
best() { # RUNS.CSV LABEL-COLUMNS...
    awk -F, -v cols="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; n = split(cols, want, " "); next }
        $c["status"] == "completed" && (best == "" || $c["total_time_ms"] + 0 < bt) {
            bt = $c["total_time_ms"] + 0; label = ""
            for (k = 1; k <= n; k++) label = label (k > 1 ? " " : "") want[k] "=" $c[want[k]]
            best = sprintf("%s | %.1f s | %d ms | %.1f vCPU-s | %d %% |", label, bt / 1000,
                $c["downtime_ms"], $c["guest_cpu_lost_s"], $c["max_throttle_pct"])
        }
        END { print (best == "" ? "(none converged) | - | - | - | - |" : best) }' "$1"
}

one() { # SCENARIO LABEL SETS...
    local scenario=$1 label=$2
    shift 2
    "$bin" sweep "$scenario" "$@" --out "$tmp/one" --top 0 >/dev/null
    printf '%s |' "$label"
    best "$tmp/one/runs.csv" "" | cut -d'|' -f2-
}

staircase_grid=(--grid cpu-throttle-initial=5,10,20,30,40,50,60,70,80,90
    --grid cpu-throttle-increment=5,10,20,30,50)
quota_grid=(--grid vcpu-dirty-limit=1,5,10,25,50,100,200,400)
# dirty-limit is QEMU 8.1+: its rows run as QEMU 10.2 whatever release the scenario mimics.
dirty_limit=(--set auto-converge=off --set dirty-limit=on --set autoconv.qemu_version=10.2)

echo "| scenario | policy | setting | total time | downtime | guest CPU lost | max throttle |"
echo "|---|---|---|---|---|---|---|"
for s in scenarios/*.toml; do
    name=$(basename "$s" .toml)
    row() { echo "| $name | $1"; }
    row "$(one "$s" "QEMU default | 20/10")"
    "$bin" sweep "$s" "${staircase_grid[@]}" --out "$tmp/stair" --top 0 >/dev/null
    row "best fixed staircase | $(best "$tmp/stair/runs.csv" "cpu-throttle-initial cpu-throttle-increment")"
    # Profile (calibrated) regions too: their writes fill their vCPUs' dirty rings.
    row "$(one "$s" "dirty-limit default | 1 MB/s" "${dirty_limit[@]}")"
    "$bin" sweep "$s" "${dirty_limit[@]}" "${quota_grid[@]}" \
        --out "$tmp/quota" --top 0 >/dev/null
    row "dirty-limit best quota | $(best "$tmp/quota/runs.csv" "vcpu-dirty-limit")"
    row "$(one "$s" "predictive | autoconv.policy" --set autoconv.policy=predictive)"
done
