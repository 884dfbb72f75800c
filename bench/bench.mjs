// udpkit bench against the tools a user would otherwise pick, in one run: throughput at full
// speed against iperf3 -u -b 0 and iperf2 -u -b 100G (the bytes each delivers, and the loss
// each reports), and
// ping-pong round trips against sockperf's ping-pong (C at both ends). Servers on core 1,
// clients on core 0. Prints JSON; `npm run bench` folds it into its targets.
//
//   node bench/bench.mjs   (REPS, default 3; SECONDS per run, default 3)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { have } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'dist', 'cli', 'main.js');
const node = process.execPath;
const REPS = Number(process.env.REPS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 3);
let nextPort = 33000 + Math.floor(Math.random() * 2000) * 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Whether something is bound to a port, on any address, in /proc/net/TABLE or TABLE6. */
function bound(port, table) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return [table, `${table}6`].some((t) => {
    try {
      return readFileSync(`/proc/net/${t}`, 'utf8')
        .split('\n')
        .some((line) => line.trim().split(/\s+/)[1]?.endsWith(hex.trim()));
    } catch {
      return false;
    }
  });
}
async function waitBound(port, table = 'udp') {
  for (let i = 0; i < 500 && !bound(port, table); i++) await sleep(10);
  if (!bound(port, table)) throw new Error(`nothing bound to ${port}`);
}

function server(args, port, table) {
  const p = spawn('taskset', ['-c', '1', ...args], { stdio: 'ignore', detached: true });
  return waitBound(port, table).then(() => p);
}
function stop(p) {
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {}
}
const client = (args) =>
  execFileSync('taskset', ['-c', '0', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

async function udpkitThroughput() {
  const port = nextPort++;
  const s = await server([node, cli, 'bench', 'server', '127.0.0.1', `${port}`, '-q'], port, 'udp');
  try {
    const d = JSON.parse(
      client([
        node,
        cli,
        'bench',
        'client',
        '127.0.0.1',
        `${port}`,
        '--rate',
        '0',
        '--size',
        '1400',
        '-t',
        `${SECONDS}s`,
        '--json',
      ]),
    );
    return {
      bps: d.summary.bits_per_second,
      lostPercent: d.summary.lost_percent,
      drops: d.summary.receiver_kernel_drops,
    };
  } finally {
    stop(s);
  }
}

async function iperf3Throughput() {
  const port = nextPort++;
  const s = await server(['iperf3', '-s', '-1', '-p', `${port}`], port, 'tcp');
  try {
    const d = JSON.parse(
      client([
        'iperf3',
        '-c',
        '127.0.0.1',
        '-p',
        `${port}`,
        '-u',
        '-b',
        '0',
        '-l',
        '1400',
        '-t',
        `${SECONDS}`,
        '--json',
      ]),
    );
    // The receiver's view: what arrived, over the test's length.
    const sum = d.end.sum;
    return { bps: sum.bits_per_second * (1 - sum.lost_percent / 100), lostPercent: sum.lost_percent };
  } finally {
    stop(s);
  }
}

/** iperf2 (2.1, -e): its server's report, as the client prints it. */
async function iperf2Throughput() {
  const port = nextPort++;
  const s = await server(['iperf', '-s', '-u', '-e', '-p', `${port}`], port, 'udp');
  try {
    const out = client([
      'iperf',
      '-c',
      '127.0.0.1',
      '-p',
      `${port}`,
      '-u',
      '-b',
      '100G',
      '-l',
      '1400',
      '-t',
      `${SECONDS}`,
      '-e',
    ]);
    const m =
      /Server Report:[\s\S]*?sec\s+[\d.]+ \w+\s+([\d.]+) ([KMG])bits\/sec\s+[\d.]+ ms\s+\d+\/\d+ \(([\d.]+)%\)/.exec(
        out,
      );
    const unit = { K: 1e3, M: 1e6, G: 1e9 }[m?.[2] ?? 'G'];
    return { bps: Number(m?.[1]) * unit, lostPercent: Number(m?.[3]) };
  } finally {
    stop(s);
  }
}

async function udpkitPingpong() {
  const port = nextPort++;
  const s = await server([node, cli, 'bench', 'server', '127.0.0.1', `${port}`, '-q'], port, 'udp');
  try {
    const d = JSON.parse(
      client([
        node,
        cli,
        'bench',
        'client',
        '127.0.0.1',
        `${port}`,
        '--mode',
        'pingpong',
        '--size',
        '64',
        '-t',
        `${SECONDS}s`,
        '--json',
      ]),
    );
    return { p50: d.summary.rtt_us.p50, p99: d.summary.rtt_us.p99, count: d.summary.rtt_us.answered };
  } finally {
    stop(s);
  }
}

async function sockperfPingpong() {
  const port = nextPort++;
  const s = await server(['sockperf', 'server', '-i', '127.0.0.1', '-p', `${port}`], port, 'udp');
  try {
    const out = client([
      'sockperf',
      'ping-pong',
      '-i',
      '127.0.0.1',
      '-p',
      `${port}`,
      '--mps',
      'max',
      '-t',
      `${SECONDS}`,
      '-m',
      '64',
    ]);
    // sockperf reports half of each round trip.
    const pct = (p) => 2 * Number(new RegExp(`percentile ${p} =\\s*([\\d.]+)`).exec(out)?.[1]);
    return { p50: pct('50.000'), p99: pct('99.000'), count: Number(/SentMessages=(\d+)/.exec(out)?.[1]) };
  } finally {
    stop(s);
  }
}

const out = { throughput: {}, pingpong: {} };
const runs = async (fn) => {
  const all = [];
  for (let i = 0; i < REPS; i++) all.push(await fn());
  return all;
};
out.throughput.udpkit = await runs(udpkitThroughput);
if (have('iperf3')) out.throughput.iperf3 = await runs(iperf3Throughput);
if (have('iperf')) out.throughput.iperf2 = await runs(iperf2Throughput);
out.pingpong.udpkit = await runs(udpkitPingpong);
if (have('sockperf')) out.pingpong.sockperf = await runs(sockperfPingpong);
for (const group of Object.values(out))
  for (const [k, rs] of Object.entries(group))
    group[k] = {
      ...Object.fromEntries(Object.keys(rs[0]).map((f) => [f, median(rs.map((r) => r[f]))])),
      runs: rs,
    };
console.log(JSON.stringify(out));
process.exit(0);
