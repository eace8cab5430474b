#!/usr/bin/env bash
# How close does the calibrated simulator come to a real KVM guest?
#
#   scripts/calibration-report.sh GUEST.img SCENARIO.toml [OUT_DIR]
#
# GUEST.img     a guest image (`autoconv guest build ... -o GUEST.img`)
# SCENARIO.toml a scenario describing the same guest: its memory (as --mem), its vCPUs, and a
#               region named "heap" with pattern = "profile", sized as the guest's working set
#               (--wss) and with the profile_access of its pattern. Its `profile` key is
#               replaced by the profile measured here. scenarios/calibrated.toml is a template.
# OUT_DIR       default results/calibration-<image name>
#
# Environment: AUTOCONV (default: target/release/autoconv), KVM_ARGS (extra arguments for
# `profile --kvm` and `run --kvm`, e.g. "--mem 1GiB --vcpus 2"), POLICIES (space-separated
# policies, each a comma-separated list of NAME=VALUE; default: four auto-converge policies),
# BANDWIDTH (the migration bandwidth the profile plot is judged at, default 128MiB/s).
#
# Steps: 1. profile the real guest (throttle vs dirty rate); 2. for each policy, migrate the
# real guest and simulate SCENARIO.toml calibrated on that profile with the run's parameters
# (`autoconv compare`); 3. plot both timelines; 4. collect the tables in OUT_DIR/report.txt.
set -euo pipefail
if [ $# -lt 2 ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
image=$1
scenario=$2
out=${3:-results/calibration-$(basename "${image%.*}")}
bin=${AUTOCONV:-target/release/autoconv}
kvm_args=${KVM_ARGS:-}
policies=${POLICIES:-"auto-converge=on auto-converge=on,cpu-throttle-initial=10,cpu-throttle-increment=5 auto-converge=on,cpu-throttle-initial=40,cpu-throttle-increment=20 auto-converge=on,cpu-throttle-tailslow=on"}
mkdir -p "$out"
report=$out/report.txt
: >"$report"

# shellcheck disable=SC2086 # KVM_ARGS is a list of arguments
"$bin" profile --kvm "$image" $kvm_args -o "$out/profile.csv" | tee -a "$report"
"$bin" plot "$out/profile.csv" --bandwidth "${BANDWIDTH:-128MiB/s}" -o "$out/profile.png" >/dev/null

n=0
for policy in $policies; do
    n=$((n + 1))
    sets=()
    IFS=, read -r -a pairs <<<"$policy"
    for p in "${pairs[@]}"; do sets+=(--set "$p"); done
    echo "== policy $n: $policy" | tee -a "$report"
    # shellcheck disable=SC2086
    "$bin" run --kvm "$image" $kvm_args "${sets[@]}" --out "$out/real-$n" | tee -a "$report" || true
    "$bin" compare "$out/real-$n" "$scenario" --set "region.heap.profile=$out/profile.csv" \
        --out "$out/sim-$n" | tee -a "$report"
    "$bin" plot "$out/real-$n" -o "$out/real-$n.png" >/dev/null
    "$bin" plot "$out/sim-$n" -o "$out/sim-$n.png" >/dev/null
done
echo "wrote $report and the plots in $out/"
