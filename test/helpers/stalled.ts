/**
 * Stalled and slow consumers: every verb that writes output, writing to a pipe nobody reads
 * during a flood. Memory stays bounded, nothing is lost without being counted, and output
 * resumes when the reader does. The same checks for `npm test` (short floods,
 * test/cli/stalled.test.ts) and for the slow suite (10 s, test/slow/stalled.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import type { UdpSocket } from '../../src/lib/index.js';
import { type Running, startCli } from './cli.js';
import { bound } from './net.js';
import { lastCounters, peakRss } from './proc.js';
import { until } from './time.js';

const MB = 1024 * 1024;

/** A named pipe in a directory of its own, removed when the test ends. */
function fifo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-stalled-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'pipe');
  execFileSync('mkfifo', [path]);
  return path;
}

/** What a filled pipe holds before the process's own output. */
const FILLER = Buffer.from(`${'-'.repeat(63)}\n`);

/**
 * A pipe (a named one: a shell's `|`, not the socket pair spawn makes) already full, for a
 * process's stdout: its first write finds no room. `fd` is for the process (close it once
 * spawned); `read()` starts reading and collects what comes after the filler.
 */
async function fullPipe() {
  const path = fifo();
  // Read and write, so that neither open waits for the other end.
  const fd = openSync(path, 'r+');
  const reader = await open(path, 'r');
  onTestFinished(() => reader.close());
  const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  let filled = 0;
  try {
    for (;;) filled += writeSync(filler, FILLER);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
  } finally {
    closeSync(filler);
  }
  const got = { text: '', ended: false };
  return {
    fd,
    got,
    read() {
      const chunks: Buffer[] = [];
      const stream = reader.createReadStream({ autoClose: false });
      stream.on('data', (d: Buffer | string) => {
        chunks.push(Buffer.from(d));
        got.text = Buffer.concat(chunks).subarray(filled).toString();
      });
      stream.on('end', () => {
        got.ended = true;
      });
    },
  };
}

/**
 * Sends 1000-byte datagrams (or `size`) to `port` for `ms`, in rounds of `perRound`, at most
 * `maxRounds` of them, yielding between rounds (with `pace`, a timer's turn: a gentler flood).
 * With `until`, goes on past `ms` until it holds, for as long again at most.
 */
async function flood(
  socket: UdpSocket,
  port: number,
  ms: number,
  options: {
    size?: number;
    perRound?: number;
    maxRounds?: number;
    pace?: boolean;
    until?: () => boolean;
  } = {},
): Promise<number> {
  const {
    size = 1000,
    perRound = 200,
    maxRounds = 20_000,
    pace = false,
    until: enough = () => true,
  } = options;
  const payload = Buffer.alloc(size * perRound, 0x61);
  const lengths = new Uint32Array(perRound).fill(size);
  const start = Date.now();
  const going = () => {
    const t = Date.now() - start;
    return t < ms || (t < 2 * ms && !enough());
  };
  let sent = 0;
  for (let round = 0; round < maxRounds && going(); round++) {
    await socket.sendPacked(payload, lengths, perRound, port, '127.0.0.1');
    sent += perRound;
    await new Promise((r) => (pace ? setTimeout(r, 1) : setImmediate(r)));
  }
  return sent;
}

/** Sends `text` every 50 ms, at most 100 times, until `done()`. */
async function sendUntil(socket: UdpSocket, port: number, text: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) {
    await socket.send(text, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The port a bench server reports on stderr. */
async function benchServer(options: { stdout?: number } = {}): Promise<{ server: Running; port: number }> {
  const server = startCli(['bench', 'server', '127.0.0.1', '0'], options);
  const port = Number((await server.waitFor('stderr', /Bench server on .*:(\d+)\n/))[1]);
  return { server, port };
}

/** Defines the suite, each flood lasting `floodMs`. */
export function stalledSuite(floodMs: number): void {
  const timeout = floodMs + 20_000;
  const seconds = floodMs / 1000;

  it.for(['listen', 'echo'] as const)(
    `%s: a ${seconds} s flood with stdout never read holds memory bounded, counts every datagram, resumes once read`,
    { timeout },
    async (verb) => {
      const running = startCli([verb, '127.0.0.1', '0', '--stats-interval', '100ms', '--rcvbuf', '4M'], {
        readStdout: false,
      });
      const port = Number((await running.waitFor('stderr', /Listening on .*:(\d+)\n/))[1]);
      const pid = running.child.pid as number;
      const client = await bound();
      const answers: string[] = [];
      client
        .consume((msg) => {
          if (msg.data.length < 100) answers.push(msg.data.toString());
        })
        .catch(() => {});
      await flood(client, port, floodMs);
      // Its output full, the verb stops taking datagrams (echo then answers none): they wait in
      // the kernel's buffer, which drops the rest and says so.
      await running.waitFor('stderr', /drops_kernel=[1-9]/, 10_000);
      const peak = peakRss(pid);
      expect(peak).toBeLessThan(100 * MB);

      // The reader comes back: output flows again, and new datagrams are printed (and answered).
      running.readStdout();
      const marker = 'Received message: marker-after-stall from 127.0.0.1:';
      await sendUntil(client, port, 'marker-after-stall', () =>
        verb === 'echo' ? answers.includes('marker-after-stall') : running.stdout.includes(marker),
      );
      await until(() => running.stdout.includes(marker), 5000);
      running.child.kill('SIGINT');
      const r = await running.wait();
      expect(r.code).toBe(130);
      const c = lastCounters(
        r.stderr,
        'received',
        'printed',
        'pending',
        'drops_queue',
        'drops_output',
        'drops_kernel',
      );
      // Every datagram taken was printed, none dropped for output: reception paused instead.
      expect(c.printed + c.pending + c.drops_queue + c.drops_output).toBe(c.received);
      expect(c.pending).toBe(0);
      expect(c.drops_output).toBe(0);
      expect(c.drops_kernel).toBeGreaterThan(0);
      if (verb === 'echo') {
        expect(answers).toContain('marker-after-stall');
        expect(r.stderr).toMatch(
          /\nudpkit echo: received=\d+ .* answered=\d+ reply_errors=\d+ rcvbuf=\d+\n$/,
        );
        // Every one taken was answered, or its reply's failure counted.
        const e = lastCounters(r.stderr, 'answered', 'reply_errors');
        expect(e.answered + e.reply_errors).toBe(c.received - c.drops_queue);
      }
      // Stdout has a line for each datagram printed.
      expect(running.stdout.split('\n').filter((l) => l.startsWith('Received message: ')).length).toBe(
        c.printed,
      );
      console.log(
        `${verb}, ${seconds} s: peak RSS ${(peak / MB).toFixed(1)} MB; ${r.stderr.trimEnd().split('\n').at(-1)}`,
      );
    },
  );

  /** A bench client's run of the flood's length: 20k/s of 1000 B, a report each 100 ms. */
  const clientArgs = (port: number) =>
    ['bench', 'client', '127.0.0.1', String(port), '-t', `${floodMs}ms`, '-i', '100ms'].concat([
      '--rate',
      '20k',
      '--size',
      '1000',
    ]);

  it(
    `bench server: stdout full during a ${seconds} s run, the client's figures unharmed, every report there once read`,
    async () => {
      const pipe = await fullPipe();
      const { server, port } = await benchServer({ stdout: pipe.fd });
      closeSync(pipe.fd);
      const client = startCli(clientArgs(port));
      const c = await client.wait(floodMs + 10_000);
      expect(c.code).toBe(0);
      expect(c.stdout).toMatch(/\nsent (\d+), received \1 \(/);
      const peak = peakRss(server.child.pid as number);
      expect(peak).toBeLessThan(100 * MB);

      pipe.read();
      await until(() => / done: received /.test(pipe.got.text), 5000);
      const lines = pipe.got.text.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^\[[0-9a-f]{12}\] 127\.0\.0\.1:\d+: throughput, 1000 B$/);
      const intervals = lines.filter((l) => /^\[[0-9a-f]{12}\] \d+\.\d+-\d+\.\d+ s {2}received /.test(l));
      expect(intervals.length).toBe(floodMs / 100);
      expect(lines.at(-1)).toMatch(/ done: received (\d+) of \1, lost 0, /);
      server.child.kill('SIGINT');
      const r = await server.wait();
      expect(r.code).toBe(130);
      expect(r.stderr).toMatch(/\nudpkit bench server: foreign 0, garbled 0\n$/);
      console.log(`bench server, ${seconds} s: peak RSS ${(peak / MB).toFixed(1)} MB; ${lines.at(-1)}`);
    },
    timeout,
  );

  it(
    `bench client: stdout full during a ${seconds} s run at 100 ms intervals, waits for its reader, then the whole report`,
    async () => {
      const { server, port } = await benchServer();
      const pipe = await fullPipe();
      const client = startCli(clientArgs(port), { stdout: pipe.fd });
      closeSync(pipe.fd);
      // The server has sent its report: the client holds its own, unwritten, and cannot exit.
      await server.waitFor('stdout', / done: received /, floodMs + 10_000);
      expect(client.child.exitCode).toBe(null);
      const peak = peakRss(client.child.pid as number);
      expect(peak).toBeLessThan(100 * MB);

      pipe.read();
      const r = await client.wait(10_000);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      await until(() => pipe.got.ended, 5000);
      const lines = pipe.got.text.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^Benchmarking 127\.0\.0\.1:\d+: throughput, 1000 B at 20000\/s/);
      expect(lines.filter((l) => / s {2}sent \d+ {2}offered /.test(l)).length).toBe(floodMs / 100);
      const report = lines.indexOf("Receiver's report (the server):");
      expect(report).toBeGreaterThan(0);
      expect(lines.slice(report).filter((l) => / s {2}received \d+ /.test(l)).length).toBe(floodMs / 100);
      expect(pipe.got.text).toMatch(/\nsent (\d+), received \1 \(/);
      expect(pipe.got.text).toMatch(/\nsender errors 0, receiver kernel drops \d+\n$/);
      server.child.kill('SIGINT');
      expect((await server.wait()).code).toBe(130);
      console.log(`bench client, ${seconds} s: peak RSS ${(peak / MB).toFixed(1)} MB; ${lines.length} lines`);
    },
    timeout,
  );

  it(
    `proxy --log to a named pipe not read during a ${seconds} s flood: memory bounded, the lines it could not hold counted, the log flows again once read`,
    async () => {
      const target = await bound();
      let arrived = 0;
      target
        .consume(() => {
          arrived++;
        })
        .catch(() => {});
      const log = fifo();
      const running = startCli([
        'proxy',
        '--listen',
        '127.0.0.1:0',
        '--target',
        `127.0.0.1:${target.address().port}`,
        '--log',
        log,
        '--stats-interval',
        '200ms',
      ]);
      // No reader yet: the proxy says what it waits for.
      await running.waitFor('stderr', /--log \S+ is a named pipe: waiting for a reader to open it\n/);
      const reader = await open(log, 'r');
      onTestFinished(() => reader.close());
      const port = Number((await running.waitFor('stderr', /Proxying .*:(\d+) -> /))[1]);
      const pid = running.child.pid as number;
      const client = await bound();
      // 100-byte datagrams, paced: the proxy's own memory under a flood it cannot keep up with
      // is not what is measured here. Past the 8 MiB it holds for the reader (some 120k
      // lines), lines are dropped and counted; on a busy machine that may take longer.
      const dropping = /log_dropped=[1-9]/;
      await flood(client, port, floodMs, {
        size: 100,
        perRound: 100,
        maxRounds: 100_000,
        pace: true,
        until: () => dropping.test(running.stderr),
      });
      await running.waitFor('stderr', dropping, 2000);
      const peak = peakRss(pid);
      expect(peak).toBeLessThan(100 * MB);

      // The reader reads: the log resumes, with the lines of a client that came after.
      let text = '';
      let ended = false;
      const stream = reader.createReadStream({ autoClose: false });
      stream.on('data', (d: Buffer | string) => {
        text += d.toString();
      });
      stream.on('end', () => {
        ended = true;
      });
      const late = await bound();
      await sendUntil(late, port, 'after', () => text.includes('"flow":2,'));
      expect(text).toContain('"flow":2,');
      running.child.kill('SIGINT');
      const r = await running.wait();
      expect(r.code).toBe(130);
      await until(() => ended, 5000);
      const c = lastCounters(r.stderr, 'up_received', 'up_forwarded', 'down_received', 'log_dropped');
      const lines = text.split('\n').filter((l) => l.length > 0);
      // Every line parses: whole lines were dropped, never parts of one.
      for (const line of [lines[0], lines.at(-1)])
        expect(JSON.parse(line as string)).toHaveProperty('action');
      // One line per decision: each was written or counted as dropped.
      expect(c.log_dropped).toBeGreaterThan(0);
      expect(lines.length + c.log_dropped).toBe(c.up_received + c.down_received);
      expect(c.up_forwarded).toBe(c.up_received);
      expect(arrived).toBeGreaterThan(0);
      console.log(
        `proxy, ${seconds} s: peak RSS ${(peak / MB).toFixed(1)} MB; up_received=${c.up_received} lines=${lines.length} log_dropped=${c.log_dropped}`,
      );
    },
    timeout,
  );
}

/** Ctrl-C while `proxy --log` waits for a named pipe's reader: it stops, and says so. */
export function fifoWithoutReader(): void {
  it('proxy --log to a named pipe nobody opens says it waits, and Ctrl-C ends the wait', async () => {
    const log = fifo();
    const running = startCli(['proxy', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', '--log', log]);
    await running.waitFor('stderr', /is a named pipe: waiting for a reader to open it\n/);
    running.child.kill('SIGINT');
    const r = await running.wait(5000);
    expect(r.code).toBe(130);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `udpkit proxy: --log ${log} is a named pipe: waiting for a reader to open it\nudpkit proxy: stopped before it was proxying; relayed 0 datagrams\n`,
    );
  });
}
