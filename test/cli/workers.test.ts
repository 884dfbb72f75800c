/**
 * --workers: listen, echo and bench server in several threads on one SO_REUSEPORT port, with
 * one merged output and one set of counters. Senders use many source ports, so that the
 * kernel's hash spreads them (all of 32 on one worker of 2: a chance of 2^-31).
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/lib/native.js';
import { CLI, type Running, runCli, start, startCli } from '../helpers/cli.js';
import { bound, have, receiveN } from '../helpers/net.js';
import { until } from '../helpers/time.js';

const native = nativeAddon || (process.env.CI && process.env.UDPKIT_NATIVE !== '0') ? it : it.skip;
const DGRAM = { env: { UDPKIT_NATIVE: '0' } };

/** Starts `verb` with --workers on port 0 and reads back its port. */
async function startWorkers(verb: string[], args: string[]): Promise<{ running: Running; port: number }> {
  const running = startCli([...verb, '127.0.0.1', '0', ...args]);
  const m = await running.waitFor('stderr', /on 127\.0\.0\.1:(\d+) \((\d+) workers/);
  return { running, port: Number(m[1]) };
}

/** Sends `each` numbered datagrams from each of `sources` sockets; returns what was sent. */
async function sendSpread(port: number, sources: number, each: number): Promise<string[]> {
  const sent: string[] = [];
  for (let s = 0; s < sources; s++) {
    const client = await bound();
    const batch = Array.from({ length: each }, (_, i) => `s${s}-${i}`);
    await client.sendEach(batch, port, '127.0.0.1');
    sent.push(...batch);
  }
  return sent;
}

/** The `by worker a/b` or `by_worker=a/b` figures of a summary. */
function byWorker(stderr: string): number[] {
  const m = stderr.match(/by[ _]worker[ =]([\d/]+)/);
  if (!m) throw new Error(`no per-worker figures in ${JSON.stringify(stderr)}`);
  return (m[1] as string).split('/').map(Number);
}

describe('listen --workers', () => {
  native('prints every datagram once, as whole lines, and the counters add up', async () => {
    const { running, port } = await startWorkers(
      ['listen'],
      ['--workers', '2', '--stats', '--idle-timeout', '600ms'],
    );
    const sent = await sendSpread(port, 32, 100);
    const r = await running.wait();
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    for (const line of lines) expect(line).toMatch(/^Received message: s\d+-\d+ from 127\.0\.0\.1:\d+$/);
    const got = lines.map((l) => l.split(' ')[2]);
    expect(got.sort()).toEqual([...sent].sort());
    // Each sender's datagrams stay in order: one sender, one worker.
    for (let s = 0; s < 32; s++) {
      const mine = lines.map((l) => l.split(' ')[2] as string).filter((m) => m.startsWith(`s${s}-`));
      expect(mine).toEqual(sent.filter((m) => m.startsWith(`s${s}-`)));
    }
    expect(r.stderr).toMatch(
      /udpkit listen: received=3200 bytes=\d+ printed=3200 pending=0 drops_queue=0 drops_output=0 drops_kernel=0 rcvbuf=\d+ by_worker=\d+\/\d+\n$/,
    );
    const spread = byWorker(r.stderr);
    expect(spread.reduce((a, b) => a + b)).toBe(3200);
    expect(Math.min(...spread)).toBeGreaterThan(0);
  });

  native('--count is exact over all workers, and what others took meanwhile is counted', async () => {
    const { running, port } = await startWorkers(['listen'], ['--workers', '2', '--count', '1000']);
    // Bounded: 32 x 50 = 1600 at most, the count is met well before.
    await sendSpread(port, 32, 50);
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1000);
    const past = r.stderr.match(/past --count (\d+)/);
    const received = r.stderr.match(/received (\d+) datagrams/);
    if (past) expect(Number(received?.[1])).toBe(1000 + Number(past[1]));
    else expect(r.stderr).not.toMatch(/udpkit listen: received/);
  });

  native('Ctrl-C stops every worker: exit 130 and one summary, with the spread', async () => {
    const { running, port } = await startWorkers(['listen'], ['--workers', '3']);
    await sendSpread(port, 16, 20);
    await until(() => running.stdout.split('\n').length > 320, 5000);
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(
      /^Listening on 127\.0\.0\.1:\d+ \(3 workers\)\nudpkit listen: received 320 datagrams \(\d+ bytes\), printed 320; by worker \d+\/\d+\/\d+\n$/,
    );
    expect(byWorker(r.stderr).reduce((a, b) => a + b)).toBe(320);
  });

  native('a reader that goes away ends it quietly, as without workers', async () => {
    const running = start(
      'sh',
      ['-c', `"${process.execPath}" "$CLI" listen 127.0.0.1 0 --workers 2 --idle-timeout 3s | head -1`],
      { env: { CLI } },
    );
    const m = await running.waitFor('stderr', /:(\d+) \(2 workers/);
    // 800 KB of lines: far more than a pipe holds, so writes meet the closed pipe.
    await sendSpread(Number(m[1]), 8, 2000);
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Received message: s\d+-\d+ from 127\.0\.0\.1:\d+\n$/);
    expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
    expect(r.stderr).toMatch(/not printed \d+ \(output \d+\)/);
  });

  native('a stalled stdout pauses every worker; nothing is lost uncounted, and output resumes', async () => {
    const running = startCli(
      ['listen', '127.0.0.1', '0', '--workers', '2', '--stats', '--idle-timeout', '1s'],
      {
        readStdout: false,
      },
    );
    const m = await running.waitFor('stderr', /:(\d+) \(2 workers/);
    const port = Number(m[1]);
    // 64 KiB of pipe fill at once; the rest waits in the workers' sockets or is counted.
    await sendSpread(port, 8, 2500);
    await new Promise((resolve) => setTimeout(resolve, 300));
    running.readStdout();
    const r = await running.wait(20_000);
    expect(r.code).toBe(0);
    const last = r.stderr.trim().split('\n').at(-1) as string;
    const fig = (k: string) => Number(last.match(new RegExp(`${k}=(\\d+)`))?.[1]);
    expect(fig('received') + fig('drops_kernel')).toBe(20000);
    expect(fig('printed') + fig('pending') + fig('drops_queue') + fig('drops_output')).toBe(fig('received'));
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(fig('printed'));
  });

  native('--steer cpu: each datagram goes to the worker of the CPU that took it in', async (ctx) => {
    if (availableParallelism() < 2 || !have('taskset')) ctx.skip();
    const { running, port } = await startWorkers(
      ['listen'],
      ['--workers', '2', '--steer', 'cpu', '--stats', '--idle-timeout', '800ms'],
    );
    expect(running.stderr).toMatch(/\(2 workers, steered by CPU\)/);
    // On loopback the sender's CPU takes the datagram in: CPU 0's go to worker 0, CPU 1's to 1.
    for (const [cpu, count] of [
      [0, 300],
      [1, 500],
    ] as const) {
      const r = await start('taskset', [
        '-c',
        String(cpu),
        process.execPath,
        CLI,
        'send',
        '127.0.0.1',
        String(port),
        '--count',
        String(count),
        '--size',
        '16',
        '-q',
      ]).wait();
      expect(r.code).toBe(0);
    }
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(byWorker(r.stderr)).toEqual([300, 500]);
  });

  it('refuses what cannot work: exit 2 for usage, exit 1 on node:dgram', async () => {
    for (const [args, message] of [
      [['--workers', '0'], /--workers: '0' is not a number of workers from 1 to 256, or auto/],
      [['--workers', '300'], /--workers: '300' is not a number of workers from 1 to 256, or auto/],
      [['--workers', 'x'], /--workers: 'x' is not a number of workers/],
      [['--steer', 'cpu'], /--steer spreads datagrams over --workers/],
      [['--workers', '2', '--steer', 'rss'], /--steer: 'rss' is not hash or cpu/],
      [
        ['--workers', '2', '--join', '239.1.2.3'],
        /--join with --workers: each worker would receive every group/,
      ],
    ] as const) {
      const r = await runCli(['listen', '127.0.0.1', '0', ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    }
    const echo = await runCli(['echo', '127.0.0.1', '0', '--workers', '4', '--rate-limit', '3']);
    expect(echo.code).toBe(2);
    expect(echo.stderr).toMatch(/--rate-limit 3 is shared by --workers 4/);
    const dgram = await runCli(['listen', '127.0.0.1', '0', '--workers', '2'], DGRAM);
    expect(dgram.code).toBe(1);
    expect(dgram.stderr).toBe(
      'udpkit listen: --workers needs the native transport (SO_REUSEPORT) (disabled by UDPKIT_NATIVE=0)\n',
    );
    const bench = await runCli(['bench', 'server', '127.0.0.1', '0', '--workers', '2'], DGRAM);
    expect(bench.code).toBe(1);
    expect(bench.stderr).toMatch(/^udpkit bench server: --workers needs the native transport/);
  });

  native('a port in use is one line and exit 1, and no worker is left behind', async () => {
    const taken = await bound();
    const r = await runCli(['listen', '127.0.0.1', String(taken.address().port), '--workers', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^udpkit listen: address 127\.0\.0\.1:\d+ is already in use\n$/);
  });

  native('a port held by another group of workers is refused, not shared', async () => {
    const { running, port } = await startWorkers(['listen'], ['--workers', '2']);
    for (const verb of [['listen'], ['echo'], ['bench', 'server']]) {
      const r = await runCli([...verb, '127.0.0.1', String(port), '--workers', '2']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^udpkit [a-z ]+: address 127\.0\.0\.1:\d+ is already in use\n$/);
    }
    running.child.kill('SIGINT');
    expect((await running.wait()).code).toBe(130);
  });
});

describe('echo --workers', () => {
  native('answers every sender from the port it was sent to', async () => {
    const { running, port } = await startWorkers(['echo'], ['--workers', '2']);
    for (let s = 0; s < 16; s++) {
      const client = await bound();
      const msgs = Array.from({ length: 10 }, (_, i) => `e${s}-${i}`);
      await client.sendEach(msgs, port, '127.0.0.1');
      const replies = await receiveN(client, 10);
      expect(replies.map((d) => d.data.toString())).toEqual(msgs);
      expect(replies.every((d) => d.from.port === port)).toBe(true);
    }
    running.child.kill('SIGTERM');
    const r = await running.wait();
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(
      /received 160 datagrams \(\d+ bytes\), printed 160; answered 160; by worker \d+\/\d+\n$/,
    );
  });
});

describe('bench server --workers', () => {
  native('serves clients at once, each session whole on one worker', async () => {
    const { running, port } = await startWorkers(['bench', 'server'], ['--workers', '2']);
    const clients = Array.from({ length: 3 }, () =>
      runCli(['bench', 'client', '127.0.0.1', String(port), '-t', '0.5', '--rate', '2k', '--size', '100'], {
        ms: 15_000,
      }),
    );
    const results = await Promise.all(clients);
    for (const c of results) {
      expect(c.code).toBe(0);
      expect(c.stdout).toMatch(/lost 0\/\d+ \(0 %\)/);
    }
    await until(
      () => (running.stdout.match(/done: received (\d+) of \1, lost 0,/g) ?? []).length === 3,
      5000,
    );
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    expect(r.stdout.match(/: throughput, 100 B\n/g)).toHaveLength(3);
    expect(r.stderr).toMatch(/udpkit bench server: foreign 0, garbled 0\n$/);
  });
});
