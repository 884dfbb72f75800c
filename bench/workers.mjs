// listen --workers on the machine at hand: what a datagram costs in each thread. SENDERS C
// blasters (4: all on one of two workers has a chance of 1 in 8; see `spread`) send
// COUNT datagrams of SIZE bytes in all at RATE/s, well below what one listen takes, to
// `listen` and to `listen --workers 2`, writing FORMAT to a file. The CPU time of every
// thread of the receiver is read from /proc while it runs: the main thread's share is the
// part that does not spread over cores (with workers it only copies their output to the
// file), the rest is what more cores take on. Prints JSON, medians of REPS runs.
//
//   node bench/workers.mjs BLAST   (REPS 3, COUNT 200000, RATE 50000, SIZES 64,1024, FORMAT text)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliNodeFlags, waitBound } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'dist', 'cli', 'main.js');
const [blast] = process.argv.slice(2);
const REPS = Number(process.env.REPS ?? 3);
const COUNT = Number(process.env.COUNT ?? 200_000);
const RATE = Number(process.env.RATE ?? 50_000);
const SIZES = (process.env.SIZES ?? '64,1024').split(',').map(Number);
const FORMAT = process.env.FORMAT ?? 'text';
const SENDERS = Number(process.env.SENDERS ?? 4);
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
let nextPort = 43000 + Math.floor(Math.random() * 2000) * 10;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = mkdtempSync(join(tmpdir(), 'udpkit-workers-'));

/** CPU time of each thread of `pid` so far, in µs, by thread id. */
function threadTimes(pid) {
  const times = new Map();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      times.set(Number(tid), (Number(fields[11]) + Number(fields[12])) * TICK_US);
    }
  } catch {
    // Gone: the last reading stands.
  }
  return times;
}

/** One run: datagrams printed, and CPU µs per datagram in the main thread and in all. */
async function run(workers, size) {
  const port = nextPort++;
  const file = join(dir, 'out');
  const args = ['listen', '127.0.0.1', String(port), '--format', FORMAT, '--idle-timeout', '1', '--stats'];
  if (workers > 1) args.push('--workers', String(workers));
  const rx = spawn(
    'sh',
    ['-c', `exec "$@" > ${file}`, 'sh', process.execPath, ...cliNodeFlags(cli), cli, ...args],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  rx.stderr.on('data', (d) => (err += d));
  const done = new Promise((r) => rx.on('close', r));
  await waitBound(port);
  for (let i = 0; i < 500 && !err.includes('Listening'); i++) await new Promise((r) => setTimeout(r, 10));
  // Threads only gain time; a worker's entry goes when it ends, so keep each one's last.
  const last = threadTimes(rx.pid);
  const sampler = setInterval(() => {
    for (const [tid, us] of threadTimes(rx.pid)) last.set(tid, us);
  }, 50);
  const each = [String(COUNT / SENDERS), String(size), String(RATE / SENDERS)];
  await Promise.all(
    Array.from({ length: SENDERS }, (_, i) => i).map(
      () =>
        new Promise((r) =>
          spawn(blast, ['127.0.0.1', String(port), ...each], { stdio: 'ignore' }).on('close', r),
        ),
    ),
  );
  await done;
  clearInterval(sampler);
  const printed = Number(
    err
      .match(/printed=(\d+)/g)
      ?.at(-1)
      ?.slice(8),
  );
  const main = last.get(rx.pid) ?? 0;
  const all = [...last.values()].reduce((a, b) => a + b, 0);
  return {
    printed,
    spread: err.match(/by_worker=([\d/]+)/)?.[1],
    mainUs: main / printed,
    allUs: all / printed,
  };
}

const results = {};
for (const size of SIZES) {
  for (const workers of [1, 2]) {
    const runs = [];
    for (let rep = 0; rep < REPS; rep++) runs.push(await run(workers, size));
    results[`${workers === 1 ? 'listen' : `listen --workers ${workers}`}, ${size} B`] = {
      mainThreadUsPerDatagram: median(runs.map((r) => r.mainUs)),
      allThreadsUsPerDatagram: median(runs.map((r) => r.allUs)),
      printedPercent: (100 * median(runs.map((r) => r.printed))) / COUNT,
      spread: runs.map((r) => r.spread).filter(Boolean),
    };
  }
}
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(results, null, 2));
