#!/bin/bash
# send --count and send -q --file (one line per datagram) of two builds against the C blaster,
# in one run of the peers' harness (../shared/peers/run.sh: sender on core 0, the C sink on
# core 1, repetitions interleaved), 300000 datagrams of 64 and 1024 bytes:
#   bench/ab-send.sh BEFORE_DIST AFTER_DIST [WORK]
# A DIST is a build's dist/ folder, with its build/ (the addon) and package.json beside it, as
# a copy of the repository has them. REPS (default 3) and PEERS_DIR as for the harness.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS_DIR:-$HERE/../../shared/peers}
B=$(cd "$1" && pwd)/cli/main.js A=$(cd "$2" && pwd)/cli/main.js W=${3:-/tmp/ab-send}
mkdir -p "$W"
for s in 64 1024; do
  [ -e "$W/lines-$s.txt" ] || node -e "require('fs').writeFileSync('$W/lines-$s.txt', ('x'.repeat($s - 1) + '\n').repeat(300000))"
done
tx() { echo "gen-$1=node $2 send 127.0.0.1 {port} --count {count} --size {size};lines-$1=node $2 send 127.0.0.1 {port} -q --stats-interval 1h --file $W/lines-{size}.txt"; }
WORK=$W/work N_UNL=300000 REPS=${REPS:-3} SECTIONS=send TX_EXTRA="$(tx before "$B");$(tx after "$A")" \
  TX_ONLY='blast gen-before lines-before gen-after lines-after' bash "$PEERS/run.sh"
