#!/usr/bin/env bash
# `autoconv advise` wall time on every shipped scenario: the median of REPEATS runs each, with
# the host and the load. Each run is started in its own session with its autogroup raised
# (needs root; otherwise it runs at the share the scheduler gives it), so other work on the
# machine slows it as little as it can; the load is printed beside the figures.
#
#   bash scripts/advise-speed.sh [BINARY] [REPEATS]
#
# Run from the repository root. Writes nothing (advise only prints). A scenario where no policy
# converges (dma) exits 1 from advise; its time still counts.
set -euo pipefail
bin=${1:-target/release/autoconv}
repeats=${2:-3}
[[ -x $bin ]] || { echo "advise-speed.sh: $bin is not an executable (cargo build --release)" >&2; exit 2; }
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) logical CPUs"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf '%-42s %8s %8s\n' scenario "wall s" "CPU s"
for f in scenarios/*.toml; do
    walls=() cpus=()
    for _ in $(seq "$repeats"); do
        t=$(setsid sh -c 'echo -19 > /proc/self/autogroup 2>/dev/null; exec /usr/bin/time -f "%e %U %S" "$0" advise "$1" --json' "$bin" "$f" 2>&1 >/dev/null | tail -1 || true)
        walls+=("$(echo "$t" | cut -d' ' -f1)")
        cpus+=("$(echo "$t" | awk '{print $2 + $3}')")
    done
    printf '%-42s %8s %8s\n' "$f" "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
