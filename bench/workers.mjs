// listen --workers: one listen thread against two, and the C recvmmsg sink (one thread), each
// receiving from SENDERS C blasters at once (several senders, so that the kernel's hash can
// spread them: all 8 on one of 2 workers has a chance of 1 in 128), writing FORMAT to a file. Nothing is pinned: the workers need both cores, and the
// blasters share them. Prints JSON: per receiver and size, median loss (% of what was sent)
// and CPU time per datagram received (user + system of the whole process).
//
//   node bench/workers.mjs BLAST SINK   (REPS, default 3; COUNT in all, default 400000;
//     RATE in all, default 200000/s; SIZES, default 64,1024; SENDERS, default 8; FORMAT, text)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitBound } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'dist', 'cli', 'main.js');
const [blast, sink] = process.argv.slice(2);
const REPS = Number(process.env.REPS ?? 3);
const COUNT = Number(process.env.COUNT ?? 400_000);
const RATE = Number(process.env.RATE ?? 200_000);
const SENDERS = Number(process.env.SENDERS ?? 8);
const FORMAT = process.env.FORMAT ?? 'text';
const SIZES = (process.env.SIZES ?? '64,1024').split(',').map(Number);
let nextPort = 41000 + Math.floor(Math.random() * 2000) * 10;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = mkdtempSync(join(tmpdir(), 'udpkit-workers-'));

const RECEIVERS = {
  listen: (port) => [
    process.execPath,
    cli,
    'listen',
    '127.0.0.1',
    String(port),
    '--idle-timeout',
    '1',
    '--stats',
  ],
  'listen --workers 2': (port) => [
    process.execPath,
    cli,
    'listen',
    '127.0.0.1',
    String(port),
    '--format',
    FORMAT,
    '--workers',
    '2',
    '--idle-timeout',
    '1',
    '--stats',
  ],
  // The C sink: recvmmsg, one thread, text lines (-f), 4 MB buffer as listen asks.
  'C sink': (port) => [
    sink,
    '127.0.0.1',
    String(port),
    String(2 * COUNT),
    '1000',
    '-f',
    '-r',
    String(4 << 20),
  ],
};

/** One run: what the receiver got of COUNT, and its CPU time. */
async function run(receiver, size) {
  const port = nextPort++;
  const file = join(dir, 'out');
  const rx = spawn(
    'sh',
    ['-c', `exec /usr/bin/time -f 'cpu %U %S' "$@" > ${file}`, 'sh', ...RECEIVERS[receiver](port)],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  rx.stderr.on('data', (d) => (err += d));
  const done = new Promise((r) => rx.on('close', r));
  await waitBound(port);
  // udpkit listen --workers binds in turn: wait until it says it listens.
  for (let i = 0; i < 500 && receiver.startsWith('listen') && !err.includes('Listening'); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const senders = [0, 1].map(
    () =>
      new Promise((r) =>
        spawn(blast, ['127.0.0.1', String(port), String(COUNT), String(size), String(RATE)], {
          stdio: 'ignore',
        }).on('close', r),
      ),
  );
  await Promise.all(senders);
  await done;
  // Text: a line a datagram; any other format: listen's own count of what it printed.
  const lines =
    FORMAT === 'text' || !receiver.startsWith('listen')
      ? Number(execFileSync('wc', ['-l', file], { encoding: 'utf8' }).split(' ')[0])
      : Number(
          err
            .match(/printed=(\d+)/g)
            ?.at(-1)
            ?.slice(8),
        );
  const [, user, sys] = err.match(/cpu ([\d.]+) ([\d.]+)/) ?? [];
  const cpu = (Number(user) + Number(sys)) * 1e6;
  return {
    lossPercent: (100 * (2 * COUNT - lines)) / (2 * COUNT),
    cpuPerDatagramUs: cpu / Math.max(1, lines),
    lines,
  };
}

const results = {};
for (const size of SIZES) {
  for (const receiver of Object.keys(RECEIVERS)) results[`${receiver}, ${size} B`] = [];
  for (let rep = 0; rep < REPS; rep++) {
    for (const receiver of Object.keys(RECEIVERS))
      results[`${receiver}, ${size} B`].push(await run(receiver, size));
  }
}
rmSync(dir, { recursive: true, force: true });
const summary = {};
for (const [key, runs] of Object.entries(results)) {
  summary[key] = {
    lossPercent: median(runs.map((r) => r.lossPercent)),
    cpuPerDatagramUs: median(runs.map((r) => r.cpuPerDatagramUs)),
    runs: runs.map((r) => `${r.lossPercent.toFixed(2)} %${r.spread ? ` (${r.spread})` : ''}`).join(', '),
  };
}
console.log(JSON.stringify(summary, null, 2));
