// Senders of equal-size datagrams: `udpkit send --count --size` (UDP GSO: up to 64 datagrams
// a buffer, up to 64 buffers a sendmmsg call) against the C sendmmsg blaster (one datagram a
// message, 64 messages a call), each sending to the same receiver: bench/gro-sink.mjs, which
// takes GSO buffers whole with GRO. Sender on core 0, receiver on core 1, interleaved.
// Prints JSON: per sender, median bytes/s sent (its own count over its own time) and
// delivered. `npm run bench` folds it into its targets.
//
//   node bench/gso.mjs BLAST   (REPS, default 3; COUNT, default 2000000; SIZE, default 1400)
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliNodeFlags, waitBound } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'dist', 'cli', 'main.js');
const blast = process.argv[2];
const REPS = Number(process.env.REPS ?? 3);
const COUNT = Number(process.env.COUNT ?? 2_000_000);
const SIZE = Number(process.env.SIZE ?? 1400);
let nextPort = 36000 + Math.floor(Math.random() * 2000) * 10;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const SENDERS = {
  blast: (port) => [blast, '127.0.0.1', String(port), String(COUNT), String(SIZE)],
  udpkit: (port) => [
    process.execPath,
    ...cliNodeFlags(cli),
    cli,
    'send',
    '127.0.0.1',
    String(port),
    '--count',
    String(COUNT),
    '--size',
    String(SIZE),
  ],
};

/** One run: the sender's own datagrams/s, and what the receiver got. */
async function run(sender) {
  const port = nextPort++;
  const sink = spawn(
    'taskset',
    ['-c', '1', process.execPath, join(root, 'bench', 'gro-sink.mjs'), String(port)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  sink.stdout.on('data', (d) => (out += d));
  const done = new Promise((r) => sink.on('close', r));
  await waitBound(port);
  const s = spawnSync('taskset', ['-c', '0', ...SENDERS[sender](port)], { encoding: 'utf8' });
  await done;
  // blast: "sent=N elapsed=S pps=P"; udpkit send: "udpkit send: sent=N ... elapsed=Ss pps=P"
  const pps = Number((s.stdout + s.stderr).match(/pps=(\d+)/)?.[1]);
  const received = Number(out.match(/received=(\d+)/)?.[1]);
  return { sentBytesPerSecond: pps * SIZE, received, drops: Number(out.match(/drops=(\d+)/)?.[1]) };
}

const runs = { blast: [], udpkit: [] };
for (let rep = 0; rep < REPS; rep++)
  for (const sender of Object.keys(SENDERS)) runs[sender].push(await run(sender));
const result = {};
for (const [sender, rs] of Object.entries(runs)) {
  result[sender] = {
    sentBitsPerSecond: median(rs.map((r) => r.sentBytesPerSecond * 8)),
    deliveredPercent: median(rs.map((r) => (100 * r.received) / COUNT)),
    runs: rs,
  };
}
console.log(JSON.stringify({ size: SIZE, count: COUNT, ...result }, null, 2));
