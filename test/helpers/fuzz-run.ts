/**
 * The fuzzer run against each verb as a user runs it: the built CLI spawned, its output read as
 * it streams and checked record by record, the sending held to what has come out so that no
 * buffer on the way may overflow and every datagram must be accounted for.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { openUdpSocket } from '../../src/lib/index.js';
import { type Running, startCli } from './cli.js';
import {
  Base64Checker,
  BenchShapes,
  type Checker,
  DatagramChecker,
  HexChecker,
  JsonChecker,
  Payloads,
  RawChecker,
  sendClosedLoop,
  TextChecker,
} from './fuzz.js';
import { bound } from './net.js';
import { memory, parseCounters } from './proc.js';
import { echoServer, startProxy } from './proxy.js';
import { until } from './time.js';

export type Format = 'text' | 'json' | 'hex' | 'base64' | 'raw';

/** What a run did, for its test to check and its report to say. */
export interface FuzzRun {
  datagrams: number;
  bytes: number;
  ms: number;
  /** The first record that did not match, if any. */
  error: string | undefined;
  code: number | null;
  stderr: string;
  /** The verb's peak resident memory as last sampled, bytes. */
  peakRss: number;
}

/** Samples a process's peak resident memory (VmHWM) while it runs: read `peak` at any time. */
function rssSampler(pid: number): { peak: number; stop: () => void } {
  const s = { peak: 0, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    s.peak = memory(pid, 'VmHWM') ?? s.peak;
  }, 100);
  onTestFinished(s.stop);
  return s;
}

function checkerFor(format: Format, expected: Payloads, port: number): Checker {
  const next = () => expected.next();
  const from = `127.0.0.1:${port}`;
  switch (format) {
    case 'text':
      return new TextChecker(next, from);
    case 'json':
      return new JsonChecker(next, port);
    case 'hex':
      return new HexChecker(next, from);
    case 'base64':
      return new Base64Checker(next);
    case 'raw':
      return new RawChecker(next);
  }
}

/** Waits for a verb's "… on host:port" line and returns the port. */
async function portOf(running: Running, pattern: RegExp): Promise<number> {
  return Number((await running.waitFor('stderr', pattern, 15_000))[1]);
}

/** `listen --count n -f format`: n payloads from `seed`, every record checked as it comes. */
export async function fuzzListen(
  format: Format,
  n: number,
  seed: number,
  largeShare = 0.01,
): Promise<FuzzRun> {
  const running = startCli(['listen', '127.0.0.1', '0', '--count', String(n), '--format', format], {
    readStdout: false,
  });
  const port = await portOf(running, /Listening on .*:(\d+)\n/);
  const rss = rssSampler(running.child.pid as number);
  const client = await bound();
  const checker = checkerFor(format, new Payloads(seed, largeShare), client.address().port);
  running.child.stdout?.on('data', (d: Buffer) => checker.feed(d));
  const t0 = performance.now();
  await sendClosedLoop(n, new Payloads(seed, largeShare), (p) => client.send(p, port), checker, {
    problem: () => `; stderr: ${running.stderr}`,
  });
  if (checker.error !== undefined) running.child.kill('SIGKILL');
  const r = await running.wait(60_000);
  rss.stop();
  return {
    datagrams: checker.count,
    bytes: checker.bytes,
    ms: performance.now() - t0,
    error: checker.error,
    code: r.code,
    stderr: r.stderr,
    peakRss: rss.peak,
  };
}

/**
 * `echo -f json`: each payload answered with its own bytes (checked as the answers come) and
 * logged as a json line that gives it back. Ended with Ctrl-C.
 */
export async function fuzzEcho(
  n: number,
  seed: number,
  largeShare = 0.01,
): Promise<FuzzRun & { logged: number }> {
  const running = startCli(['echo', '127.0.0.1', '0', '--format', 'json'], { readStdout: false });
  const port = await portOf(running, /Listening on .*:(\d+)\n/);
  const rss = rssSampler(running.child.pid as number);
  // A receive buffer for the largest answers.
  const client = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20 });
  onTestFinished(() => client.close());
  const answers = new DatagramChecker(() => expectedAnswers.next());
  const expectedAnswers = new Payloads(seed, largeShare);
  client.consume((m) => answers.feed(Buffer.from(m.data)));
  const log = new JsonChecker(() => expectedLog.next(), client.address().port);
  const expectedLog = new Payloads(seed, largeShare);
  running.child.stdout?.on('data', (d: Buffer) => log.feed(d));
  const t0 = performance.now();
  await sendClosedLoop(n, new Payloads(seed, largeShare), (p) => client.send(p, port), answers, {
    problem: () => `; stderr: ${running.stderr}`,
  });
  const ms = performance.now() - t0;
  await until(
    () => (log.count === n && answers.count === n) || log.error !== undefined || answers.error !== undefined,
    20_000,
  ).catch(() => {});
  const serving = running.child.exitCode === null;
  running.child.kill('SIGINT');
  const r = await running.wait(20_000);
  rss.stop();
  return {
    datagrams: serving ? answers.count : -1,
    bytes: answers.bytes,
    ms,
    error: answers.error ?? log.error,
    code: r.code,
    stderr: r.stderr,
    peakRss: rss.peak,
    logged: log.count,
  };
}

/**
 * `proxy` with no impairment between a client and a target that answers each datagram: what
 * reaches the target, what comes back, and the event log are each checked against the
 * payloads, in order. Ended with Ctrl-C; its counters say what became of every datagram.
 */
export async function fuzzProxy(
  n: number,
  seed: number,
  largeShare = 0.01,
): Promise<FuzzRun & { counters: Record<string, number>; logLines: number; logError: string | undefined }> {
  const up = new DatagramChecker(() => expectedUp.next());
  const expectedUp = new Payloads(seed, largeShare);
  const target = await echoServer({ recvBufferSize: 8 << 20, seen: (m) => up.feed(Buffer.from(m.data)) });
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-fuzz-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const logFile = join(dir, 'events.jsonl');
  const { running, port } = await startProxy(target.address().port, [
    '--log',
    logFile,
    '--stats-interval',
    '1s',
  ]);
  const rss = rssSampler(running.child.pid as number);
  const client = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20 });
  onTestFinished(() => client.close());
  const down = new DatagramChecker(() => expectedDown.next());
  const expectedDown = new Payloads(seed, largeShare);
  client.consume((m) => down.feed(Buffer.from(m.data)));
  const t0 = performance.now();
  await sendClosedLoop(n, new Payloads(seed, largeShare), (p) => client.send(p, port), down, {
    problem: () => `; up ${up.count}; stderr: ${running.stderr}`,
  });
  await until(() => down.count === n || up.error !== undefined || down.error !== undefined, 20_000).catch(
    () => {},
  );
  const ms = performance.now() - t0;
  const serving = running.child.exitCode === null;
  running.child.kill('SIGINT');
  const r = await running.wait(20_000);
  rss.stop();
  const last = r.stderr.trimEnd().split('\n').at(-1) ?? '';
  const counters = parseCounters(last);
  // The log: one line per decision, each direction's in order, each the size of its payload.
  const sizes = { up: new Payloads(seed, largeShare), down: new Payloads(seed, largeShare) };
  const next = { up: 0, down: 0 };
  let logLines = 0;
  let logError: string | undefined;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (line === '') continue;
    logLines++;
    try {
      const e = JSON.parse(line) as { dir: 'up' | 'down'; i: number; action: string; size: number };
      const size = sizes[e.dir].next().length;
      if (e.action !== 'pass' || e.i !== next[e.dir]++ || e.size !== size)
        logError ??= `line ${logLines}: ${line} (expected i ${next[e.dir] - 1}, size ${size})`;
    } catch (err) {
      logError ??= `line ${logLines}: ${String(err)}`;
    }
  }
  return {
    datagrams: serving && up.count === down.count ? down.count : -1,
    bytes: down.bytes,
    ms,
    error: up.error ?? down.error,
    code: r.code,
    stderr: r.stderr,
    peakRss: rss.peak,
    counters,
    logLines,
    logError,
  };
}

/** What a bench client's --json document says of its run. */
interface BenchSummary {
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  garbled: number;
}

/**
 * `bench server` fed bench-shaped datagrams that are no measurement (cut short, malformed,
 * replayed from a session that ended, of no session) while a bench client runs beside them.
 * The server must count each as foreign or garbled, as it is, and the run must come out exact.
 */
export async function fuzzBenchServer(
  n: number,
  seed: number,
): Promise<{
  code: number | null;
  stderr: string;
  expected: { foreign: number; garbled: number };
  counted: { foreign: number; garbled: number } | undefined;
  run: BenchSummary;
  peakRss: number;
  ms: number;
}> {
  const server = startCli(['bench', 'server', '127.0.0.1', '0', '--json']);
  const port = await portOf(server, /Bench server on 127\.0\.0\.1:(\d+)\n/);
  const rss = rssSampler(server.child.pid as number);
  const sessions = () =>
    [...server.stdout.matchAll(/"type":"session","session":"([0-9a-f]+)"/g)].map((m) =>
      Number.parseInt(m[1] as string, 16),
    );
  // A run that ends: its session is then replayed.
  const first = await startCli([
    'bench',
    'client',
    '127.0.0.1',
    String(port),
    '--count',
    '200',
    '--json',
  ]).wait(20_000);
  if (first.code !== 0) throw new Error(`the first bench run failed: ${first.stderr}`);
  const [ended] = sessions();
  // The run beside the fuzz: long enough to outlast it, bounded by its count.
  const live = startCli([
    'bench',
    'client',
    '127.0.0.1',
    String(port),
    '--count',
    String(Math.max(20_000, 2 * n)),
    '--rate',
    '10k',
    '--size',
    '200',
    '--json',
  ]);
  await until(() => sessions().length === 2, 10_000);
  const liveSession = sessions()[1] as number;
  const shapes = new BenchShapes(seed, ended as number, liveSession);
  const fuzzer = await bound();
  const expected = { foreign: 0, garbled: 0 };
  const t0 = performance.now();
  // Paced in runs of 16 a millisecond (at most 16k/s beside the run's 10k/s): the server's
  // buffer never overflows, so every datagram must be counted.
  for (let i = 0; i < n; i++) {
    const [datagram, label] = shapes.next();
    expected[label]++;
    await fuzzer.send(datagram, port);
    if (i % 16 === 15) await new Promise((r) => setTimeout(r, 1));
  }
  const ms = performance.now() - t0;
  if (live.child.exitCode !== null) throw new Error('the run beside ended before the fuzz did');
  const done = await live.wait(Math.max(60_000, n / 2));
  const run = (JSON.parse(done.stdout) as { summary: BenchSummary }).summary;
  // The server has read everything sent to it once the run beside has its report.
  server.child.kill('SIGINT');
  const r = await server.wait(20_000);
  rss.stop();
  const m = /udpkit bench server: foreign (\d+), garbled (\d+)\n$/.exec(r.stderr);
  return {
    code: r.code,
    stderr: r.stderr,
    expected,
    counted: m ? { foreign: Number(m[1]), garbled: Number(m[2]) } : undefined,
    run,
    peakRss: rss.peak,
    ms,
  };
}
