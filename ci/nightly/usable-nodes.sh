#!/bin/bash
# The number of nodes a nightly can run on: exactly one number, the nodes of one partition that are up and
# not drained, for sbatch --nodes:
#
#   sbatch --nodes="$(ci/nightly/usable-nodes.sh)" ci/nightly/lambda-1cc.sbatch
#
# 'sinfo -h -o %D' is no such number: it prints one count per partition and node state, so a cluster with a
# second partition or one drained node gives two lines and sbatch --nodes="3
# 1" fails. Here sinfo lists one line per node (-N) with its compact state (%t), and the distinct node names
# in a usable state are counted: idle, mixed, allocated (they free up when the jobs on them end), completing
# and planned, and those powering up or powered down (~, #) that Slurm resumes when a job needs them. Not
# counted: drained or draining, down, failed, reserved, maintenance, and any node that does not respond (*).
#
# The partition is $1, else $PARTITION, else the cluster's default partition (sinfo marks it with *); the
# job must then be submitted to the same partition (sbatch -p). Exits 1 with a line on stderr when no node is
# usable, so "$(...)" never hands sbatch an empty --nodes.
set -uo pipefail

partition="${1:-${PARTITION:-}}"
if [ -z "$partition" ]; then
  partition="$(sinfo -h -o %P | sed -n 's/\*$//p' | head -n 1)"
fi
if [ -n "$partition" ]; then
  listing="$(sinfo -h -N -p "$partition" -o '%N %t')" || exit 1
else
  listing="$(sinfo -h -N -o '%N %t')" || exit 1
fi
count="$(awk '$2 ~ /^(idle|mix|alloc|comp|plnd)[~#]?$/ { print $1 }' <<< "$listing" | sort -u | wc -l)"
if [ "$count" -eq 0 ]; then
  echo "usable-nodes: no usable node in partition '${partition:-all}' (sinfo -N -o '%N %t' lists their states)" >&2
  exit 1
fi
echo "$count"
