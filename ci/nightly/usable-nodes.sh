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
# job must then be submitted to the same partition (sbatch -p). Every node left out is said on stderr with its
# state and reason (usable-nodes: node07 left out (drain: railbench[link:1/-] rail 1 (mlx5_2) link dead; ...)), so the
# submitting log shows why tonight runs on fewer nodes; the report says it again. Exits 1 with a line on
# stderr when no node is usable, so "$(...)" never hands sbatch an empty --nodes.
set -uo pipefail

partition="${1:-${PARTITION:-}}"
if [ -z "$partition" ]; then
  partition="$(sinfo -h -o %P | sed -n 's/\*$//p' | head -n 1)"
fi
if [ -n "$partition" ]; then
  listing="$(sinfo -h -N -p "$partition" -o '%N|%t|%E')" || exit 1
else
  listing="$(sinfo -h -N -o '%N|%t|%E')" || exit 1
fi
usable='^(idle|mix|alloc|comp|plnd)[~#]?$'
count="$(awk -F'|' -v ok="$usable" '$2 ~ ok { print $1 }' <<< "$listing" | sort -u | wc -l)"
# The reason is the rest of the line (it may hold a '|' of its own); sinfo says 'none' when there is none.
awk -F'|' -v ok="$usable" '$1 != "" && $2 !~ ok {
  reason = substr($0, length($1) + length($2) + 3)
  printf "usable-nodes: %s left out (%s%s)\n", $1, $2, (reason == "none" ? "" : ": " reason)
}' <<< "$listing" | sort -u >&2
if [ "$count" -eq 0 ]; then
  echo "usable-nodes: no usable node in partition '${partition:-all}' (sinfo -N -o '%N %t' lists their states)" >&2
  exit 1
fi
echo "$count"
