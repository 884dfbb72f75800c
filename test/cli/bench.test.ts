/**
 * `udpkit bench` as a user runs it: the built CLI's server and client on loopback, bounded by
 * --count; the JSON document's figures, the human report, and the failures.
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI, runCli, start, startCli } from '../helpers/cli.js';
import { until } from '../helpers/time.js';

async function benchServer() {
  const running = startCli(['bench', 'server', '127.0.0.1', '0']);
  onTestFinished(() => {
    running.child.kill('SIGINT');
  });
  const m = await running.waitFor('stderr', /Bench server on 127\.0\.0\.1:(\d+)\n/);
  return { running, port: m[1] as string };
}

describe('udpkit bench', () => {
  it('client --json: one document whose summary and intervals add up', async () => {
    const { port } = await benchServer();
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '-n',
      '3000',
      '--rate',
      '10k',
      '--size',
      '100',
      '--interval',
      '100ms',
      '--grace',
      '200ms',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      version: 1,
      mode: 'throughput',
      reverse: false,
      params: { size: 100, count: 3000 },
    });
    expect(doc.summary).toMatchObject({
      sent: 3000,
      received: 3000,
      lost: 0,
      lost_percent: 0,
      duplicates: 0,
      reordered: 0,
      sender_errors: 0,
      foreign: 0,
      garbled: 0,
    });
    expect(doc.summary.delay_ms.absolute).toBe(true);
    expect(doc.summary.bits_per_second).toBeGreaterThan(0);
    const sum = (k: string) =>
      doc.intervals.reduce((a: number, i: Record<string, number>) => a + (i[k] as number), 0);
    expect([sum('sent'), sum('received'), sum('lost'), sum('bytes')]).toEqual([3000, 3000, 0, 300_000]);
  });

  it('client --isochronous: frames in the header and the report, -n counting frames', async () => {
    const { port } = await benchServer();
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '--isochronous',
      '100:3000',
      '-n',
      '20',
      '--grace',
      '200ms',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Benchmarking 127\.0\.0\.1:\d+: isochronous, 100 frames\/s of 3000 B, 20 frames\n/,
    );
    // 3000 B a frame in pieces of at most 1400: three datagrams each.
    expect(r.stdout).toMatch(/\nsent 60, received 60 \(\+0 duplicates\), lost 0 \(0 %\)/);
    expect(r.stdout).toMatch(/\nframes: sent 20, complete 20, missed 0, late \d+ /);
  });

  it('client: the report for people, pingpong with its round trips', async () => {
    const { port } = await benchServer();
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '--mode',
      'pingpong',
      '-n',
      '200',
      '--rate',
      '2k',
      '--grace',
      '200ms',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Benchmarking 127\.0\.0\.1:\d+: pingpong, 64 B, 2000\/s, 200 datagrams\n {2}0\.0-\d\.\d+ s {2}sent 200 {2}offered [\d.]+ [kM]bit\/s\n/,
    );
    expect(r.stdout).toMatch(/\nsent 200, received 200 \(\+0 duplicates\), lost 0 \(0 %\)/);
    expect(r.stdout).toMatch(
      /\nround trip µs: min \d+, p50 \d+, p90 \d+, p99 \d+, p99\.9 \d+, max \d+ \(200 answered, 0 lost\)\n/,
    );
  });

  it('--chart prints throughput and loss over time; --svg writes them as an SVG file', async () => {
    const { port } = await benchServer();
    const file = join(tmpdir(), `udpkit-bench-${process.pid}.svg`);
    onTestFinished(() => rmSync(file, { force: true }));
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '-n',
      '1000',
      '--rate',
      '5k',
      '-i',
      '50ms',
      '--grace',
      '100ms',
      '--chart',
      '--svg',
      file,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /\nthroughput [ ▁▂▃▄▅▆▇█]+ max [\d.]+ [kM]bit\/s\nloss {7}[ ▁▂▃▄▅▆▇█]+ max 0 %\n/,
    );
    const svg = readFileSync(file, 'utf8');
    expect(svg).toMatch(/^<\?xml[\s\S]*<\/svg>\n$/);
    expect(svg).toContain('sent 1000, lost 0 (0 %)');
    const bad = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '-n',
      '10',
      '--grace',
      '100ms',
      '--svg',
      '/nonexistent/x.svg',
    ]);
    expect(bad.code).toBe(1);
    // Before the run: nothing sent, nothing printed.
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe(
      'udpkit bench client: cannot write --svg /nonexistent/x.svg: no such file or directory (ENOENT)\n',
    );
  });

  it('--json-stream: the intervals, then the end document', async () => {
    const { port } = await benchServer();
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '-n',
      '500',
      '--rate',
      '5k',
      '--interval',
      '50ms',
      '--grace',
      '100ms',
      '--json-stream',
      '-R',
    ]);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({
      type: 'end',
      reverse: true,
      summary: { sent: 500, received: 500, lost: 0 },
    });
    // Reversed, the intervals are this end's receiving, as they end.
    const live = lines.slice(0, -1);
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((l) => l.type === 'interval' && l.side === 'receiver' && 'lost' in l)).toBe(true);
  });

  it('no server: exit 1 and one line; bad options: exit 2 and one line', async () => {
    // Nothing bound there: the ICMP port unreachable ends it at once, not after the timeout.
    const t0 = performance.now();
    const quiet = await runCli(['bench', 'client', '127.0.0.1', '9', '-n', '10', '--connect-timeout', '20s']);
    expect(quiet.code).toBe(1);
    expect(quiet.stderr).toBe(
      'udpkit bench client: no bench server answered at 127.0.0.1:9: 127.0.0.1:9 refused the datagram (ICMP port unreachable)\n',
    );
    expect(performance.now() - t0).toBeLessThan(10_000);
    for (const [args, message] of [
      [['--mode', 'fast'], "mode 'fast' is not throughput or pingpong"],
      [['--size', '10'], 'size 10 is not 32-65507 bytes'],
      [['--rate', '1k', '--bitrate', '1M'], '--rate and --bitrate: give one'],
      [['--mode', 'pingpong', '-R'], 'pingpong goes both ways'],
      [['--duration', 'soon'], "duration 'soon' is not a duration"],
      [
        ['--size-dist', 'bimodal'],
        "size distribution 'bimodal' is not imix, uniform:MIN-MAX or SIZE[*WEIGHT],...",
      ],
      [['--size-dist', 'uniform:900-100'], 'size range 900-100: the first is the smaller'],
      [['--size', '100', '--size-dist', 'imix'], '--size and --size-dist: give one'],
      [['--isochronous', '50'], "isochronous '50' is not FPS:BYTES"],
      [['--isochronous', '50:1200', '--rate', '1k'], '--isochronous sets the rate and the sizes'],
      [['--isochronous', '50:100000'], 'a frame of 100000 bytes is not 40 to 89600 (64 datagrams of 1400)'],
      [['--isochronous', '50:1200', '--mode', 'pingpong'], '--isochronous is a throughput run'],
      [['-n', '10', '-t', '1s'], '-n and -t: give one'],
      [['--json', '--json-stream'], '--json and --json-stream: give one'],
      [['-i', '1ms'], 'interval 1 ms is under 10 ms'],
      [['--omit', '2h'], 'omit (ms) is not 0-3600000'],
    ] as const) {
      const r = await runCli(['bench', 'client', '127.0.0.1', '9', ...args]);
      expect(r.code).toBe(2);
      // Refused before anything: no header either.
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('port 0 is no destination: exit 2', async () => {
    const r = await runCli(['bench', 'client', '127.0.0.1', '0']);
    expect([r.code, r.stderr]).toEqual([
      2,
      "udpkit bench client: port 0 is not a valid destination (1-65535) (see 'udpkit bench client --help')\n",
    ]);
  });

  it('--omit: the omitted start is in no figure; the intervals add up to the summary', async () => {
    const { port } = await benchServer();
    for (const extra of [[], ['-R'], ['--mode', 'pingpong']]) {
      const r = await runCli([
        'bench',
        'client',
        '127.0.0.1',
        port,
        ...extra,
        '--omit',
        '300ms',
        '-n',
        '600',
        '--rate',
        '3k',
        '-i',
        '100ms',
        '--grace',
        '200ms',
        '--json',
      ]);
      expect(r.code).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc.summary).toMatchObject({ sent: 600, received: 600, lost: 0, duplicates: 0, garbled: 0 });
      const sum = (k: string) =>
        doc.intervals.reduce((a: number, i: Record<string, number>) => a + (i[k] as number), 0);
      expect([sum('sent'), sum('received')]).toEqual([600, 600]);
      // Offered datagrams and bits agree: both over the counted part alone.
      const { offered_pps: pps, offered_bits_per_second: bps } = doc.summary;
      expect(Math.abs(bps - pps * doc.params.size * 8)).toBeLessThan(0.01 * bps);
      if (extra[0] === '--mode') expect(doc.summary.rtt_us.answered).toBe(600);
    }
  });

  it('Ctrl-C mid-run: the sending stops, the report of what was sent is printed, exit 130', async () => {
    const { port } = await benchServer();
    for (const extra of [[], ['-R']]) {
      const c = startCli([
        'bench',
        'client',
        '127.0.0.1',
        port,
        ...extra,
        '-t',
        '20s',
        '--rate',
        '2k',
        '-i',
        '200ms',
      ]);
      await c.waitFor('stdout', /\n {2}0\.0-0\.2 s/);
      c.child.kill('SIGINT');
      const r = await c.wait();
      expect(r.code).toBe(130);
      expect(r.stderr).toBe(
        'udpkit bench client: stopped early: the report covers what was sent until then\n',
      );
      const m = /\nsent (\d+), received (\d+) \(\+0 duplicates\), lost 0 /.exec(r.stdout);
      expect(Number(m?.[1])).toBeGreaterThan(0);
      expect(m?.[1]).toBe(m?.[2]);
      // Reversed, the last live interval is printed when the server says it is done.
      expect(r.stdout).toMatch(/Receiver's report/);
    }
  });

  it('bench server | head -1: the server ends when its reader goes', async () => {
    const err = join(tmpdir(), `udpkit-bench-head-${process.pid}.txt`);
    onTestFinished(() => rmSync(err, { force: true }));
    const pipeline = start('sh', [
      '-c',
      `"${process.execPath}" "${CLI}" bench server 127.0.0.1 0 2>"${err}" | head -1`,
    ]);
    let port = '';
    await until(() => {
      port =
        /Bench server on 127\.0\.0\.1:(\d+)/.exec(readFileSync(err, { encoding: 'utf8', flag: 'a+' }))?.[1] ??
        '';
      return port !== '';
    }, 5000);
    // The session's first line goes to head, which exits; its next meets a closed pipe and the
    // server ends (the client then hears it gone: exit 1).
    await runCli(['bench', 'client', '127.0.0.1', port, '-n', '10', '--grace', '50ms']);
    const r = await pipeline.wait(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\[[0-9a-f]{12}\] 127\.0\.0\.1:\d+: throughput, 1400 B\n$/);
    expect(readFileSync(err, 'utf8')).toMatch(/\nudpkit bench server: foreign 0, garbled 0\n$/);
  });

  it("docs/bench.md's JSON document has exactly the fields a pingpong run writes", async () => {
    const { port } = await benchServer();
    const r = await runCli([
      'bench',
      'client',
      '127.0.0.1',
      port,
      '--mode',
      'pingpong',
      '-n',
      '50',
      '--rate',
      '1k',
      '--grace',
      '100ms',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const doc = readFileSync(new URL('../../docs/bench.md', import.meta.url), 'utf8');
    const block = /## The JSON document[\s\S]*?```json\n([\s\S]*?)```/.exec(doc)?.[1] as string;
    const keys = (v: unknown, at = ''): string[] =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.entries(v).flatMap(([k, x]) => [`${at}${k}`, ...keys(x, `${at}${k}.`)])
        : Array.isArray(v) && v.length > 0
          ? keys(v[0], `${at}[].`)
          : [];
    expect(keys(JSON.parse(r.stdout)).sort()).toEqual(keys(JSON.parse(block)).sort());
  });
});
