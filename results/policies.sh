#!/usr/bin/env bash
# The evidence table of results/policies.md: for every shipped scenario, QEMU's default
# staircase (20/10), the best fixed staircase a sweep finds, dirty-limit at its defaults and at
# its best quota, and autoconv's predictive policy. Simulated; deterministic.
#
#   bash results/policies.sh > table.md        # simulated, every shipped scenario
#   bash results/policies.sh kvm [DIR] > kvm.md  # real KVM guests (needs /dev/kvm, jq; ~40 min)
#   KVM_ONLY=staircases|predictive bash results/policies.sh kvm DIR  # part of the KVM rows
#
# The KVM rows run autoconv's own VMM at normal priority: run them on a quiet machine, or say
# what else ran (the load average of each run is in its row).
set -euo pipefail
cd "$(dirname "$0")/.."
# AUTOCONV_BIN=PATH: use that binary instead of building one.
bin=${AUTOCONV_BIN:-target/release/autoconv}
[ -n "${AUTOCONV_BIN:-}" ] || nice -n 19 cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Real KVM guests: 128 MiB working sets written as fast as the vCPU goes (`--pace none`: a
# CPU-paced guest gets so little CPU on a loaded host that it converges unthrottled), in
# 256 MiB of memory at 32 MiB/s, sequential, random and hot/cold, each without and with an
# emulated device writing 2000 pages/s (8 MB/s) by DMA, which no throttle slows. Per guest:
# QEMU's default 20/10; a coarse staircase sweep (cpu-throttle-initial KVM_INITS, default
# "20 50 90", x cpu-throttle-increment KVM_INCS, default "10 30"; its best converged point is
# the "best fixed staircase");
# dirty-limit (per-vCPU dirty rings of 4096 entries) at its default 1 MB/s and at 10 MB/s
# (a quota above the 32 MiB/s link cannot converge); autoconv's predictive policy. One run
# each. Run directories stay in DIR (default a temporary one) with a sweep-format runs.csv
# per guest for `autoconv plot`; with KVM_RESUME=1 a run whose summary.json is already in DIR
# is not run again.
kvm_rows() {
    local out=${1:-$tmp/kvm}
    # KVM_ONLY=staircases (all but predictive) or predictive: run part of the rows.
    want() { [ "${KVM_ONLY:-}" = "$1" ]; }
    mkdir -p "$out"
    local common=(--mem 256MiB --warmup 2s --after 200ms --set max-bandwidth=32MiB/s
        --set autoconv.time_limit_s=120)
    local cols="run_index,run_count,scenario,sets,cpu-throttle-initial,cpu-throttle-increment,seed,status,total_time_ms,elapsed_ms,downtime_ms,transferred_bytes,dirty_sync_count,max_throttle_pct,throttle_steps,guest_cpu_lost_s,guest_pages_written"
    echo "| guest | policy | setting | total time | downtime | guest CPU lost | max throttle | memory verified | load |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for pattern in ${KVM_PATTERNS:-sequential random hotcold}; do
        "$bin" guest build --pattern "$pattern" --wss 128MiB --pace none \
            -o "$out/$pattern.img" >/dev/null
        for dma in 0 2000; do
            local guest=$pattern dma_args=()
            if [ "$dma" != 0 ]; then
                guest="$pattern+dma"
                dma_args=(--dma "$dma")
            fi
            local dir=$out/$guest
            mkdir -p "$dir"
            # RUN NAME POLICY SETTING ARGS...: one migration, one table row.
            run() {
                local name=$1 policy=$2 setting=$3
                shift 3
                local load f=$dir/$name/summary.json
                if [ -n "${KVM_RESUME:-}" ] && [ -f "$f" ]; then
                    load=$(cat "$dir/$name.load" 2>/dev/null || true)
                else
                    load=$(cut -d' ' -f1 /proc/loadavg)
                    echo "$load" >"$dir/$name.load"
                    "$bin" run --kvm "$out/$pattern.img" "${common[@]}" "${dma_args[@]}" "$@" \
                        --out "$dir/$name" >"$dir/$name.log" 2>&1 || true
                fi
                if [ ! -f "$f" ]; then
                    echo "| $guest | $policy | $setting | (run failed: $(tail -1 "$dir/$name.log")) | - | - | - | - | $load |"
                    return
                fi
                jq -r --arg g "$guest" --arg p "$policy" --arg s "$setting" --arg l "$load" '
                    "| \($g) | \($p) | \($s) | " +
                    (if .status == "completed"
                     then "\(.total_time_ms / 100 | round / 10) s | \(.downtime_ms) ms"
                     else "\(.status) after \(.elapsed_ms / 100 | round / 10) s | -" end) +
                    " | \(.guest_cpu_lost_s * 10 | round / 10) vCPU-s | \(.max_throttle_pct) % | \(.memory_verified) | \($l) |"' "$f"
            }
            want predictive || {
            run default "QEMU default" "20/10" --set auto-converge=on
            echo "$cols" >"$dir/runs.csv"
            local k=0 inits=${KVM_INITS:-20 50 90} incs=${KVM_INCS:-10 30}
            local points=$(($(wc -w <<<"$inits") * $(wc -w <<<"$incs")))
            for init in $inits; do
                for inc in $incs; do
                    local name=stair-$init-$inc
                    if [ "$init/$inc" = 20/10 ]; then
                        [ -d "$dir/$name" ] || cp -r "$dir/default" "$dir/$name"
                    else
                        run "$name" "staircase" "$init/$inc" --set auto-converge=on \
                            --set "cpu-throttle-initial=$init" --set "cpu-throttle-increment=$inc"
                    fi
                    [ -f "$dir/$name/summary.json" ] && jq -r --arg k "$k" --arg i "$init" \
                        --arg j "$inc" --arg g "$guest" --arg n "$points" '
                        [$k, $n, $g, "", $i, $j, 0, .status, .total_time_ms // "", .elapsed_ms,
                         .downtime_ms // "", .transferred_bytes, .dirty_sync_count,
                         .max_throttle_pct, (.throttle_steps | map(tostring) | join(" ")),
                         .guest_cpu_lost_s, .guest_pages_written] | @csv' \
                        "$dir/$name/summary.json" | tr -d '"' >>"$dir/runs.csv"
                    k=$((k + 1))
                done
            done
            local best
            best=$(awk -F, 'NR > 1 && $8 == "completed" && (b == "" || $9 + 0 < bt) {
                bt = $9 + 0; b = "stair-" $5 "-" $6 } END { print b }' "$dir/runs.csv")
            if [ -n "$best" ]; then
                # The sweep's own run, not a rerun.
                local setting=${best#stair-}
                jq -r --arg g "$guest" --arg s "${setting/-//}" --arg n "$points" '
                    "| \($g) | best fixed staircase (of \($n)) | \($s) | \(.total_time_ms / 100 | round / 10) s | \(.downtime_ms) ms | \(.guest_cpu_lost_s * 10 | round / 10) vCPU-s | \(.max_throttle_pct) % | \(.memory_verified) | |"' \
                    "$dir/$best/summary.json"
            else
                echo "| $guest | best fixed staircase (of $points) | (none converged) | - | - | - | - | - | |"
            fi
            local dl=(--dirty-log ring --set auto-converge=off --set dirty-limit=on)
            run dl-1 "dirty-limit default" "1 MB/s" "${dl[@]}"
            run dl-10 "dirty-limit" "10 MB/s" "${dl[@]}" --set vcpu-dirty-limit=10
            }
            want staircases || run predictive "predictive" "autoconv.policy" --set auto-converge=on \
                --set autoconv.policy=predictive
        done
    done
}

if [ "${1:-}" = kvm ]; then
    kvm_rows "${2:-}"
    exit 0
fi

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
