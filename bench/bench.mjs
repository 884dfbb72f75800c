// udpkit bench against the tools a user would otherwise pick, in one run:
// - throughput: datagrams and bits delivered at 64 B and 1400 B with no rate limit (iperf3
//   -u -b 0, iperf2 -u -b 100G), the loss each reports at fixed offered rates, and the CPU
//   each end spends per datagram (user + system time of the process, from /proc);
// - latency: ping-pong round trips against sockperf's ping-pong (C at both ends).
// Servers on core 1, clients on core 0. Prints JSON; `npm run bench` folds it into its
// targets.
//
//   node bench/bench.mjs   (REPS, default 3; SECONDS per run, default 3)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliNodeFlags, have, waitBound } from './util.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'dist', 'cli', 'main.js');
const node = process.execPath;
const REPS = Number(process.env.REPS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 3);
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
let nextPort = 33000 + Math.floor(Math.random() * 2000) * 10;
/** A command line's words (none has a space). */
const words = (line) => line.split(' ');
/** The built CLI's command line. */
const udpkit = (line) => [node, ...cliNodeFlags(cli), cli, ...words(line)];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The cases: size in bytes of payload, rate in datagrams/s (0: as fast as it goes). */
const CASES = [
  { name: '64-unlimited', size: 64, rate: 0 },
  { name: '1400-unlimited', size: 1400, rate: 0 },
  { name: '64-at-100k', size: 64, rate: 100_000 },
  { name: '64-at-250k', size: 64, rate: 250_000 },
  { name: '1400-at-100k', size: 1400, rate: 100_000 },
];

/** User + system CPU time of a process so far, in µs (all its threads). */
function cpuUs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US;
}

/** A server on core 1, to the end of a client on core 0: the client's stdout and each one's CPU. */
async function pair(serverArgs, port, table, clientArgs) {
  const p = spawn('taskset', ['-c', '1', ...serverArgs], { stdio: 'ignore', detached: true });
  try {
    await waitBound(port, table);
    const before = cpuUs(p.pid);
    // The shell that waited for the client reads the client's CPU from its children's times.
    const r = spawnSync(
      'sh',
      ['-c', 'taskset -c 0 "$@"; s=$?; echo; cat /proc/$$/stat >&2; exit $s', 'sh', ...clientArgs],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    const cpuServer = cpuUs(p.pid) - before;
    if (r.status !== 0) throw new Error(`${clientArgs.join(' ')}: exit ${r.status}: ${r.stderr}`);
    const f = r.stderr
      .split('\n')
      .find((l) => /^\d+ \(sh\) /.test(l))
      .split(') ')[1]
      .split(' ');
    return { out: r.stdout, cpuClient: (Number(f[13]) + Number(f[14])) * TICK_US, cpuServer };
  } finally {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {}
  }
}

/** What a throughput run gives, whichever the tool. */
const result = (sent, received, seconds, size, lostPercent, cpuClient, cpuServer, extra = {}) => ({
  pps: received / seconds,
  bps: (received * size * 8) / seconds,
  lostPercent,
  sent,
  received,
  clientUsPerDatagram: cpuClient / sent,
  serverUsPerDatagram: cpuServer / received,
  ...extra,
});

async function udpkitThroughput({ size, rate }) {
  const port = nextPort++;
  const c = await pair(
    udpkit(`bench server 127.0.0.1 ${port} -q`),
    port,
    'udp',
    udpkit(`bench client 127.0.0.1 ${port} --rate ${rate} --size ${size} -t ${SECONDS}s --json`),
  );
  const d = JSON.parse(c.out).summary;
  const distinct = d.received - d.duplicates;
  return result(d.sent, distinct, d.seconds, size, d.lost_percent, c.cpuClient, c.cpuServer, {
    drops: d.receiver_kernel_drops,
  });
}

async function iperf3Throughput({ size, rate }) {
  const port = nextPort++;
  const c = await pair(
    words(`iperf3 -s -p ${port}`),
    port,
    'tcp',
    words(`iperf3 -c 127.0.0.1 -p ${port} -u -b ${rate * size * 8} -l ${size} -t ${SECONDS} --json`),
  );
  // The receiver's view: what arrived, over the test's length.
  const d = JSON.parse(c.out).end.sum;
  return result(
    d.packets,
    d.packets - d.lost_packets,
    d.seconds,
    size,
    d.lost_percent,
    c.cpuClient,
    c.cpuServer,
  );
}

/** iperf2 (2.1, -e): its server's report, as the client prints it. */
async function iperf2Throughput({ size, rate }) {
  const port = nextPort++;
  const c = await pair(
    words(`iperf -s -u -e -p ${port}`),
    port,
    'udp',
    words(`iperf -c 127.0.0.1 -p ${port} -u -b ${rate ? `${rate}pps` : '100G'} -l ${size} -t ${SECONDS} -e`),
  );
  const sent = Number(/Sent (\d+) datagrams/.exec(c.out)?.[1]);
  const m = /Server Report:[\s\S]*?([\d.]+)-([\d.]+) sec[^\n]*? (\d+)\/(\d+) \(([\d.e+-]+)%\)/.exec(c.out);
  if (!m) throw new Error(`no server report from iperf2:\n${c.out}`);
  const [lost, total] = [Number(m[3]), Number(m[4])];
  return result(
    sent,
    total - lost,
    Number(m[2]) - Number(m[1]),
    size,
    Number(m[5]),
    c.cpuClient,
    c.cpuServer,
  );
}

async function udpkitPingpong() {
  const port = nextPort++;
  const c = await pair(
    udpkit(`bench server 127.0.0.1 ${port} -q`),
    port,
    'udp',
    udpkit(`bench client 127.0.0.1 ${port} --mode pingpong --size 64 -t ${SECONDS}s --json`),
  );
  const d = JSON.parse(c.out).summary;
  return { p50: d.rtt_us.p50, p99: d.rtt_us.p99, count: d.rtt_us.answered };
}

async function sockperfPingpong() {
  const port = nextPort++;
  const c = await pair(
    words(`sockperf server -i 127.0.0.1 -p ${port}`),
    port,
    'udp',
    words(`sockperf ping-pong -i 127.0.0.1 -p ${port} --mps max -t ${SECONDS} -m 64`),
  );
  // sockperf reports half of each round trip.
  const pct = (p) => 2 * Number(new RegExp(`percentile ${p} =\\s*([\\d.]+)`).exec(c.out)?.[1]);
  return { p50: pct('50.000'), p99: pct('99.000'), count: Number(/SentMessages=(\d+)/.exec(c.out)?.[1]) };
}

const tools = [['udpkit', udpkitThroughput]];
if (have('iperf3')) tools.push(['iperf3', iperf3Throughput]);
if (have('iperf')) tools.push(['iperf2', iperf2Throughput]);

/** Each case's repetitions, the tools interleaved so that a noisy minute hits them alike. */
const out = { throughput: {}, pingpong: {} };
const add = (group, key, r) => {
  group[key] ??= [];
  group[key].push(r);
};
for (let i = 0; i < REPS; i++) {
  for (const c of CASES)
    for (const [tool, fn] of tools) add(out.throughput, `${tool}-${c.name}`, await fn(c));
  add(out.pingpong, 'udpkit', await udpkitPingpong());
  if (have('sockperf')) add(out.pingpong, 'sockperf', await sockperfPingpong());
}
for (const group of Object.values(out))
  for (const [k, rs] of Object.entries(group))
    group[k] = {
      ...Object.fromEntries(Object.keys(rs[0]).map((f) => [f, median(rs.map((r) => r[f]))])),
      runs: rs,
    };
console.log(JSON.stringify(out));
process.exit(0);
