#!/bin/bash
# CPU per datagram at the margin under an unlimited flood, listen against the C sink:
#   bench/margin.sh CLI SINK BLAST [SIZE] [N]
# Each receiver (pinned to core 0) takes a flood of N, then of 2N datagrams of SIZE bytes
# from the C blaster (core 1, unpaced), text written to a file. The difference in CPU
# (user + sys) over the difference in lines written is the cost of one more datagram: the
# fixed costs (Node's start-up, listen's warm-up, the first moments of the flood) cancel.
# Prints one line per receiver: NAME cpu1 lines1 cpu2 lines2 us_per_datagram.
set -euo pipefail
CLI=$1 SINK=$2 BLAST=$3 SIZE=${4:-64} N=${5:-375000}
run() { # receiver count -> "cpu lines"
  local port=$((20000 + RANDOM % 20000)) out err tim
  out=$(mktemp) err=$(mktemp) tim=$(mktemp)
  if [ "$1" = sink ]; then
    /usr/bin/time -f "%U %S" -o "$tim" taskset -c 0 "$SINK" 127.0.0.1 $port "$2" 1000 -f -r 4194304 >"$out" 2>"$err" &
    sleep 0.3
  else
    /usr/bin/time -f "%U %S" -o "$tim" taskset -c 0 node $(sed -n '1s/^#!.*env -S node//p' "$CLI") "$CLI" listen 127.0.0.1 $port --idle-timeout 1 >"$out" 2>"$err" &
    for _ in $(seq 500); do grep -q Listening "$err" && break; sleep 0.01; done
  fi
  taskset -c 1 "$BLAST" 127.0.0.1 $port "$2" "$SIZE" 0 >/dev/null 2>&1
  wait
  read -r u s < <(tail -1 "$tim")
  echo "$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}') $(wc -l <"$out")"
  rm -f "$out" "$err" "$tim"
}
for who in sink listen; do
  read -r c1 l1 < <(run $who "$N")
  read -r c2 l2 < <(run $who $((2 * N)))
  echo "$who $c1 $l1 $c2 $l2 $(awk -v a="$c1" -v b="$c2" -v x="$l1" -v y="$l2" 'BEGIN{printf "%.3f", (b-a)*1e6/(y-x)}')"
done
