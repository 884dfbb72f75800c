#!/bin/bash
# Listen's CPU per datagram printed, for comparing two builds side by side:
#   bench/ab-listen.sh DIST LABEL FORMAT SIZE BLAST
# DIST is a build's dist/ folder, BLAST the C blaster (gcc -O2 -o blast ../shared/peers/blast.c).
# listen runs pinned to core 0, the blaster sends 750k datagrams unpaced from core 1; the line
# printed gives user+sys CPU over datagrams printed, and listen's final --stats counters.
# Interleave runs of two builds: the machine's noise moves absolute figures a lot.
set -euo pipefail
CLI=$1/cli/main.js LABEL=$2 FMT=$3 SIZE=${4:-1024} BLAST=$5
out=$(mktemp) err=$(mktemp) tim=$(mktemp)
trap 'rm -f "$out" "$err" "$tim"' EXIT
PORT=$((20000 + RANDOM % 20000))
/usr/bin/time -f "%U %S" -o "$tim" taskset -c 0 node $(sed -n '1s/^#!.*env -S node//p' "$CLI") "$CLI" listen 127.0.0.1 $PORT -f "$FMT" --idle-timeout 1 --stats >"$out" 2>"$err" &
for _ in $(seq 200); do grep -q Listening "$err" && break; sleep 0.01; done
taskset -c 1 "$BLAST" 127.0.0.1 $PORT 750000 "$SIZE" >/dev/null 2>&1
wait
read -r U S < <(tail -1 "$tim")
LINES=$(wc -l <"$out")
echo "$LABEL $FMT $SIZE cpu=$U+$S lines=$LINES us/line=$(awk -v u="$U" -v s="$S" -v n="$LINES" 'BEGIN{printf "%.2f", (u+s)*1e6/n}') :: $(grep rcvbuf= "$err" | tail -1 | cut -c15-)"
