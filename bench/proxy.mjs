// The proxy against socat as a plain UDP relay and against no relay at all, in one run:
// the most datagrams a second each delivers (64 B and 1400 B, a C blaster unpaced into it, a
// C sink behind it), the round-trip time it adds at 10k/s (p50, p99), and the proxy's memory
// with 10k flows. Prints JSON; `npm run bench` folds it into its targets.
//
//   node bench/proxy.mjs WORK   (WORK holds blast and sink, built from ../shared/peers)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { openUdpSocket, Pacer } from '../dist/lib/index.js';
import { cliNodeFlags, have, waitBound } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const work = process.argv[2];
const cli = join(root, 'dist', 'cli', 'main.js');
const node = process.execPath;
const REPS = Number(process.env.REPS ?? 3);
let nextPort = 31000 + Math.floor(Math.random() * 2000) * 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A relay from `listen` to `target`, pinned to core 0: none, socat, or the proxy. */
function relay(kind, listen, target) {
  if (kind === 'socat') {
    return spawn(
      'taskset',
      [
        '-c',
        '0',
        'socat',
        `UDP4-LISTEN:${listen},bind=127.0.0.1,fork,reuseaddr,rcvbuf=8388608`,
        `UDP4:127.0.0.1:${target}`,
      ],
      { stdio: 'ignore', detached: true },
    );
  }
  return spawn(
    'taskset',
    [
      '-c',
      '0',
      node,
      cli,
      'proxy',
      '--listen',
      `127.0.0.1:${listen}`,
      '--target',
      `127.0.0.1:${target}`,
      '-q',
    ],
    { stdio: 'ignore', detached: true },
  );
}

/** Stops a relay and what it forked (socat forks a child per client). */
function stop(p) {
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {}
}

/** Datagrams a second delivered through `kind` with the blaster unpaced, and the share delivered. */
async function throughput(kind, size, count) {
  const sinkPort = nextPort++;
  const relayPort = kind === 'direct' ? sinkPort : nextPort++;
  const sink = spawn(
    'taskset',
    ['-c', '1', join(work, 'sink'), '127.0.0.1', `${sinkPort}`, `${count}`, '1000', '-r', '8388608'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  sink.stderr.on('data', (d) => (err += d));
  const done = new Promise((r) => sink.on('close', r));
  await waitBound(sinkPort);
  const r = kind === 'direct' ? undefined : relay(kind, relayPort, sinkPort);
  if (r) await waitBound(relayPort);
  execFileSync(
    'taskset',
    ['-c', '1', join(work, 'blast'), '127.0.0.1', `${relayPort}`, `${count}`, `${size}`, '0'],
    { stdio: 'ignore' },
  );
  await done;
  if (r) stop(r);
  const m = /received=(\d+) .*pps=(\d+)/.exec(err);
  return { pps: Number(m?.[2] ?? 0), delivered: Number(m?.[1] ?? 0) / count };
}

/**
 * What one pass through `kind` takes, in µs (p50, p99): sockperf ping-pong (C at both ends,
 * one datagram in flight, at most 10k/s, 64 B, 3 s) against a sockperf server; sockperf
 * reports half the round trip, and a round trip passes the relay twice, so the relay's part
 * is this minus the direct path's. Without sockperf, a Node client and `udpkit echo` do it,
 * with their own time in the figures.
 */
async function latency(kind) {
  const serverPort = nextPort++;
  const relayPort = kind === 'direct' ? serverPort : nextPort++;
  const sockperf = have('sockperf');
  const server = sockperf
    ? spawn('taskset', ['-c', '1', 'sockperf', 'server', '-i', '127.0.0.1', '-p', `${serverPort}`], {
        stdio: 'ignore',
      })
    : spawn(
        'taskset',
        ['-c', '1', node, ...cliNodeFlags(cli), cli, 'echo', '127.0.0.1', `${serverPort}`, '-q'],
        {
          stdio: 'ignore',
        },
      );
  await waitBound(serverPort);
  const r = kind === 'direct' ? undefined : relay(kind, relayPort, serverPort);
  if (r) await waitBound(relayPort);
  try {
    if (sockperf) {
      const out = execFileSync(
        'taskset',
        [
          '-c',
          '1',
          'sockperf',
          'ping-pong',
          '-i',
          '127.0.0.1',
          '-p',
          `${relayPort}`,
          '--mps',
          '10000',
          '-t',
          '3',
          '-m',
          '64',
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const pct = (p) => Number(new RegExp(`percentile ${p} =\\s*([\\d.]+)`).exec(out)?.[1]);
      const observed = Number(/\[Valid Duration\] .*?SentMessages=(\d+)/.exec(out)?.[1] ?? Number.NaN);
      return { tool: 'sockperf', p50: pct('50.000'), p99: pct('99.000'), sent: observed };
    }
    return { tool: 'node', ...(await nodePingPong(relayPort)) };
  } finally {
    if (r) stop(r);
    server.kill('SIGKILL');
  }
}

/** Round trips at 10k/s for 3 s from a Node client: half of each, as sockperf reports, in µs. */
async function nodePingPong(port) {
  const client = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  await client.connect(port, '127.0.0.1');
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let got = 0;
  client.consume((m) => {
    const sent = m.data.readDoubleLE(0);
    h.recordValue(Math.max(1, Math.round(((performance.now() - sent) * 1000) / 2)));
    got++;
  });
  const pacer = new Pacer(10_000);
  const buf = Buffer.alloc(64);
  const total = 30_000;
  for (let i = 0; i < total; ) {
    const n = await pacer.take(total - i);
    for (let k = 0; k < n && i < total; k++, i++) {
      buf.writeDoubleLE(performance.now(), 0);
      client.trySend(buf) || (await client.send(buf));
    }
  }
  for (let i = 0; i < 100 && got < total; i++) await sleep(10);
  await client.close();
  return { p50: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), sent: total };
}

/** The proxy's RSS after 10k clients, one datagram each, and before them. */
async function flows(n) {
  const echoPort = nextPort++;
  const echo = spawn(node, [...cliNodeFlags(cli), cli, 'echo', '127.0.0.1', `${echoPort}`, '-q'], {
    stdio: 'ignore',
  });
  await waitBound(echoPort);
  const port = nextPort++;
  const proxy = spawn(
    'bash',
    [
      '-c',
      `ulimit -n $(ulimit -Hn) && exec ${node} ${cli} proxy --listen 127.0.0.1:${port} --target 127.0.0.1:${echoPort} --max-flows ${n} -q`,
    ],
    { stdio: 'ignore' },
  );
  await waitBound(port);
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.pid}/status`, 'utf8'))?.[1]) / 1024;
  await sleep(300);
  const before = rss();
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    clients.push(c);
    await c.send('x', port, '127.0.0.1');
    if (i % 500 === 499) await sleep(20);
  }
  await sleep(1000);
  const after = rss();
  const answered = clients.filter((c) => c.packetsReceived > 0).length;
  await Promise.all(clients.map((c) => c.close()));
  proxy.kill('SIGKILL');
  echo.kill('SIGKILL');
  return { beforeMB: before, afterMB: after, answered };
}

const out = { throughput: {}, latency: {}, flows: undefined };
for (const size of [64, 1400]) {
  const count = size === 64 ? 300_000 : 200_000;
  for (const kind of ['direct', 'socat', 'udpkit']) {
    const runs = [];
    for (let i = 0; i < REPS; i++) runs.push(await throughput(kind, size, count));
    out.throughput[`${kind}-${size}`] = {
      pps: median(runs.map((r) => r.pps)),
      delivered: median(runs.map((r) => r.delivered)),
      runs,
    };
  }
}
for (const kind of ['direct', 'socat', 'udpkit']) {
  const runs = [];
  for (let i = 0; i < REPS; i++) runs.push(await latency(kind));
  out.latency[kind] = {
    tool: runs[0]?.tool,
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    runs,
  };
}
out.flows = await flows(10_000);
console.log(JSON.stringify(out));
process.exit(0);
