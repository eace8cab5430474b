#!/usr/bin/env bash
# The simulator's speed, old binary against new, measured in one run: the 99 x 99 policy grid
# of big.toml (9,801 runs of a 64 GiB migration) with -j2 and -j1, and `advise` on heavy.toml,
# each command alternating between the two binaries REPEATS times; medians of wall time and
# CPU (user + sys), with the host and the load average before and after.
#
#   git worktree add /tmp/old-tree main~N && (cd /tmp/old-tree && cargo build --release)
#   bash scripts/sim-speed.sh /tmp/old-tree/target/release/autoconv target/release/autoconv 5
#
# Run from the repository root. Writes nothing (sweeps with --no-out, advise prints only).
set -euo pipefail
old=${1:?usage: sim-speed.sh OLD-BINARY NEW-BINARY [REPEATS]}
new=${2:?usage: sim-speed.sh OLD-BINARY NEW-BINARY [REPEATS]}
repeats=${3:-5}
for b in "$old" "$new"; do
    [[ -x $b ]] || { echo "sim-speed.sh: $b is not an executable" >&2; exit 2; }
done
[[ -f scenarios/big.toml ]] || { echo "sim-speed.sh: run from the repository root" >&2; exit 2; }

grid=(sweep scenarios/big.toml --grid cpu-throttle-initial=1:99:1
    --grid cpu-throttle-increment=1:99:1 --no-out)
advise=(advise scenarios/heavy.toml --max-throttle 70)

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) logical CPUs"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# measure NAME ARGS...: REPEATS alternating runs; prints one line per binary, then the ratios
measure() {
    local name=$1
    shift
    local f_old f_new
    f_old=$(mktemp) f_new=$(mktemp)
    for ((i = 0; i < repeats; i++)); do
        /usr/bin/time -f '%e %U %S' -a -o "$f_old" "$old" "$@" >/dev/null 2>&1 || true
        /usr/bin/time -f '%e %U %S' -a -o "$f_new" "$new" "$@" >/dev/null 2>&1 || true
    done
    local wo co wn cn
    wo=$(awk '{print $1}' "$f_old" | median)
    co=$(awk '{print $2 + $3}' "$f_old" | median)
    wn=$(awk '{print $1}' "$f_new" | median)
    cn=$(awk '{print $2 + $3}' "$f_new" | median)
    rm -f "$f_old" "$f_new"
    printf '%-34s old %6.2f s wall %6.2f s CPU | new %6.2f s wall %6.2f s CPU | old/new wall %.2fx CPU %.2fx\n' \
        "$name" "$wo" "$co" "$wn" "$cn" \
        "$(awk -v a="$wo" -v b="$wn" 'BEGIN {print a / b}')" \
        "$(awk -v a="$co" -v b="$cn" 'BEGIN {print a / b}')"
}

measure "big.toml 99x99 grid, -j2" "${grid[@]}" -j2
measure "big.toml 99x99 grid, -j1" "${grid[@]}" -j1
measure "advise heavy.toml --max-throttle 70" "${advise[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians of $repeats runs each, old and new alternating"
