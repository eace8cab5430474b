#!/usr/bin/env bash
# Rewrite the regression baselines from the current code. Run from the repository root after
# a deliberate change of behaviour, review `git diff results/baselines`, and commit with the
# reason. `autoconv check results/baselines/*.csv` (CI) compares against these files.
#
#   bash results/baselines/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/autoconv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

baseline() { # NAME SCENARIO SWEEP-ARGS...
    local name=$1 scenario=$2
    shift 2
    "$bin" sweep "$scenario" "$@" --out "$tmp/$name" --top 0 >/dev/null
    cp "$tmp/$name/runs.csv" "results/baselines/$name.csv"
    echo "results/baselines/$name.csv: $(($(wc -l <"results/baselines/$name.csv") - 1)) runs"
}

# Each grid is small enough for CI and crosses the behaviour that matters for its scenario.
baseline heavy scenarios/heavy.toml \
    --grid cpu-throttle-initial=10:50:20 --grid cpu-throttle-increment=10,30 --seeds 2
baseline light scenarios/light.toml \
    --grid downtime-limit=100,300 --grid max-bandwidth=64MiB/s,128MiB/s
baseline dma scenarios/dma.toml \
    --grid cpu-throttle-initial=20,50 --grid max-bandwidth=256MiB/s,1GiB/s
baseline hotcold scenarios/hotcold.toml \
    --grid cpu-throttle-initial=10:50:20 --grid cpu-throttle-tailslow=off,on
baseline big scenarios/big.toml \
    --grid cpu-throttle-initial=10:90:40 --grid cpu-throttle-increment=10:90:40
baseline qemu-7.2-reference scenarios/qemu-7.2-reference.toml \
    --grid cpu-throttle-increment=5,10,20
baseline calibrated scenarios/calibrated.toml \
    --grid cpu-throttle-initial=20,50 --grid max-bandwidth=512MiB/s,1GiB/s
for w in random sequential hotcold; do
    baseline "calibrated-kvm-$w" "scenarios/calibrated-kvm-$w.toml" \
        --grid cpu-throttle-initial=10,20,40 --grid cpu-throttle-tailslow=off,on
done
# autoconv.policy: QEMU's staircase against autoconv's predictive policy.
for s in heavy hotcold qemu-7.2-reference calibrated-kvm-random; do
    baseline "policy-$s" "scenarios/$s.toml" --grid autoconv.policy=qemu,predictive
done
baseline policy-one-hot-writer scenarios/one-hot-writer.toml \
    --grid autoconv.policy=qemu,predictive --grid cpu-throttle-initial=10,20
# dirty-limit (QEMU 8.1+): quota and period.
baseline dirty-limit-one-hot-writer scenarios/one-hot-writer.toml \
    --set auto-converge=off --set dirty-limit=on \
    --grid vcpu-dirty-limit=1,50,200 --grid x-vcpu-dirty-limit-period=500,1000
baseline dirty-limit-heavy scenarios/heavy.toml \
    --set auto-converge=off --set dirty-limit=on --grid vcpu-dirty-limit=1,100
