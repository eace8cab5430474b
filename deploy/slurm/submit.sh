#!/bin/bash
# Queue the sweep's array job, then the merge, which starts only if every task succeeded.
set -euo pipefail
here=$(dirname "$0")
sweep=$(sbatch --parsable "$here/sweep.sbatch")
sbatch --dependency="afterok:${sweep%%;*}" "$here/merge.sbatch"
