#!/bin/bash
# Loss when a flood starts the moment listen is bound:
#   bench/start-loss.sh DIST BLAST [SIZE]
# Starts listen (pinned to core 0) on a free port, and as soon as it says 'Listening on', the
# C blaster (core 1) sends 100000 datagrams of SIZE bytes (default 64) at 200k/s. Prints the
# time until bound and listen's final counters: drops_kernel is what the start cost.
set -euo pipefail
CLI=$1/cli/main.js BLAST=$2 SIZE=${3:-64}
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
t0=$(date +%s%N)
taskset -c 0 node $(sed -n '1s/^#!.*env -S node//p' "$CLI") "$CLI" listen 127.0.0.1 0 --idle-timeout 1 --stats >"$out" 2>"$err" &
until grep -q Listening "$err"; do sleep 0.002; done
t1=$(date +%s%N)
PORT=$(grep -o '127.0.0.1:[0-9]*' "$err" | head -1 | cut -d: -f2)
taskset -c 1 "$BLAST" 127.0.0.1 "$PORT" 100000 "$SIZE" 200000 >/dev/null 2>&1
wait
echo "bound after $(((t1 - t0) / 1000000)) ms; $(grep rcvbuf= "$err" | tail -1 | cut -c15-)"
