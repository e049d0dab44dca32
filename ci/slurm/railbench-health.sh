#!/bin/sh
# railbench as Slurm's node health check, prolog and epilog (docs/slurm.md). In slurm.conf, on every node:
#
#   HealthCheckProgram=/etc/slurm/railbench-health.sh
#   HealthCheckInterval=300
#   HealthCheckNodeState=IDLE
#   Prolog=/etc/slurm/railbench-health.sh
#   SchedulerParameters=nohold_on_prolog_fail
#
# It runs 'railbench health --drain': the node's own hardware checks of the profile (rails, HCAs, GPUs, error
# counters) within a time limit, one line per finding. A failing node is drained with a reason that opens with
# railbench's key and names the part and the action ("railbench[link:1/-] rail 1 (mlx5_2) ...; check the port
# state and the cable of gpu-node07 mlx5_2 port 1": docs/slurm.md, "The drain policy"); a passing node that
# railbench drained is resumed; a node someone else drained is left as it is. Exit status 0 healthy, 1 a check
# failed: a prolog that fails makes Slurm requeue the job on another node (nohold_on_prolog_fail) and keep this
# node drained with railbench's reason.
#
# slurmd runs this with no arguments and almost no environment (SLURMD_NODENAME; a prolog also gets the job's
# SLURM_* variables), so the settings are here: copy this file beside slurm.conf on every node and edit them.
RAILBENCH="${RAILBENCH:-/opt/railbench/bin/railbench}"  # railbench in the environment that has it
PROFILE="${PROFILE:-lambda-1cc}"                        # what a node should have: shipped name or TOML path
TIME_LIMIT="${TIME_LIMIT:-30}"                          # seconds; slurmd stops a health check at 60
LOG="${LOG:-}"                                          # a file to append every run's lines to; empty: none
export PATH="${PATH:-/usr/bin:/bin}"                    # where scontrol and sinfo are
# export SLURM_CONF=/etc/slurm/slurm.conf              # only where slurm.conf is not in its default place

if [ -z "$LOG" ]; then
  exec "$RAILBENCH" health --profile "$PROFILE" --drain --time-limit "$TIME_LIMIT"
fi
# slurmd keeps a health check's output only when it fails, and a prolog's never: the log keeps every run.
out="$("$RAILBENCH" health --profile "$PROFILE" --drain --time-limit "$TIME_LIMIT" 2>&1)"
status=$?
printf '%s\n%s\n' "$out" \
  "railbench-health: ${SLURM_SCRIPT_CONTEXT:-health_check} on ${SLURMD_NODENAME:-$(hostname)} exit $status" >> "$LOG"
printf '%s\n' "$out"
exit "$status"
