/**
 * Nothing lost silently: every datagram listen takes is written or counted, every output error
 * is said with exit status 1, every figure adds up, and command lines that would have sent a
 * datagram somewhere unexpected (or looked a number up in DNS) are usage errors.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI, runCli, startCli } from '../helpers/cli.js';
import { bound, receiveN } from '../helpers/net.js';

/** A shell pipeline, its stderr collected; killed when the test ends. */
function shell(script: string, stdout: 'pipe' | number = 'pipe') {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', stdout, 'pipe'] });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout: out, stderr: err })),
  );
  return { child, exited, stderr: () => err };
}

/** Waits for `udpkit listen`'s port on stderr. */
async function portOf(stderr: () => string, child: ChildProcess, ms = 5000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = /Listening on .*:(\d+)\n/.exec(stderr());
    if (m) return Number(m[1]);
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no port: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends `count` datagrams of `size` bytes in bursts of 64 (no newline in them). */
async function flood(port: number, count: number, size: number, fill = 0x61): Promise<void> {
  const client = await bound();
  const per = 64;
  const data = Buffer.alloc(size * per, fill);
  const lengths = new Uint32Array(per).fill(size);
  for (let sent = 0; sent < count; sent += per) {
    await client.sendPacked(data, lengths, Math.min(per, count - sent), port);
    if (sent % 1024 === 0) await new Promise((r) => setImmediate(r));
  }
}

/** The key=value counters of the last `--stats` line. */
function statsOf(stderr: string) {
  const line = stderr.trimEnd().split('\n').at(-1) as string;
  const get = (k: string) => Number(new RegExp(`\\b${k}=(\\d+)`).exec(line)?.[1] ?? Number.NaN);
  return {
    received: get('received'),
    printed: get('printed'),
    pending: get('pending'),
    queue: get('drops_queue'),
    output: get('drops_output'),
    kernel: get('drops_kernel'),
  };
}

describe('listen writes or counts every datagram it takes', () => {
  it('into a file under a flood: every datagram received is printed (none dropped for output)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'udpkit-int-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'out.txt');
    const fd = openSync(file, 'w');
    // hex writes about 4.5 KB per 1 KB datagram: 27 MB, past the 8 MiB listen holds.
    const run = shell(`exec node ${CLI} listen 127.0.0.1 0 -f hex --idle-timeout 1 --stats-interval 1h`, fd);
    closeSync(fd);
    const port = await portOf(run.stderr, run.child);
    await flood(port, 6000, 1024);
    const r = await run.exited;
    expect(r.code).toBe(0);
    const c = statsOf(r.stderr);
    expect(c.output).toBe(0);
    expect(c.queue).toBe(0);
    expect(c.printed).toBe(c.received);
    expect(c.received + c.kernel).toBe(6000);
    const headers = readFileSync(file, 'latin1').match(/^Received 1024 bytes from /gm) ?? [];
    expect(headers).toHaveLength(c.printed);
  });

  it('waits for a slow reader to take all of its output, like any filter', async () => {
    const run = shell(`node ${CLI} listen 127.0.0.1 0 --count 100 -f raw | (sleep 3; wc -l)`);
    const port = await portOf(run.stderr, run.child);
    await flood(port, 100, 10_000);
    const r = await run.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('100');
    expect(r.stderr).toBe(`Listening on 127.0.0.1:${port}\n`);
  });

  it('only a signal cuts the wait for a stalled reader short, and what it abandons is counted', async () => {
    const running = startCli(['listen', '127.0.0.1', '0', '--count', '100', '-f', 'raw'], {
      readStdout: false,
    });
    const port = Number((await running.waitFor('stderr', /Listening on .*:(\d+)\n/))[1]);
    // 1 MB of output into a pipe nobody reads: most of it cannot be written.
    await flood(port, 100, 10_000);
    // Received all 100, and still running: it waits for the reader, however long.
    await new Promise((r) => setTimeout(r, 500));
    expect(running.child.exitCode).toBeNull();
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    const m =
      /udpkit listen: received 100 datagrams \(1000000 bytes\), printed (\d+), not printed (\d+) \(output (\d+), (\d+) of them abandoned at exit\)\n$/.exec(
        r.stderr,
      );
    expect(m, r.stderr).not.toBeNull();
    const [printed, notPrinted, output, abandoned] = (m as RegExpExecArray).slice(1).map(Number) as number[];
    expect((printed as number) + (notPrinted as number)).toBe(100);
    expect(output).toBe(notPrinted);
    expect(abandoned).toBe(output);
    expect(abandoned).toBeGreaterThan(0);
  });

  it('--idle-timeout does not fire while reception is paused for a stalled reader', async () => {
    const run = shell(
      `node ${CLI} listen 127.0.0.1 0 -f raw -w 0.5 --stats-interval 1h | (sleep 2.5; wc -l); echo "status=\${PIPESTATUS[0]}" >&2`,
    );
    const port = await portOf(run.stderr, run.child);
    // 16 MB of output: past what listen holds and the pipe's buffer, so reception pauses.
    await flood(port, 16_000, 1000);
    const r = await run.exited;
    expect(r.stderr).toContain('status=0');
    const c = statsOf(r.stderr.replace(/\nstatus=\d+\n?$/, ''));
    // Nothing in hand was dropped: all of it reached the reader.
    expect(c.output).toBe(0);
    expect(c.printed).toBe(c.received);
    expect(Number(r.stdout.trim())).toBe(c.printed);
    expect(c.received + c.kernel).toBe(16_000);
  });

  it('counts every datagram when the reader goes away (listen | head -1)', async () => {
    const run = shell(
      `node ${CLI} listen 127.0.0.1 0 --stats-interval 1h | head -1; echo "status=\${PIPESTATUS[0]}" >&2`,
    );
    const port = await portOf(run.stderr, run.child);
    const client = await bound();
    // Until listen writes again after head has gone, it cannot know: keep sending, bounded.
    let done = false;
    void run.exited.then(() => {
      done = true;
    });
    for (let round = 0; round < 100 && !done; round++) {
      await client.sendEach(
        Array.from({ length: 200 }, (_, i) => `datagram ${round * 200 + i}`),
        port,
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = await run.exited;
    expect(r.stdout).toMatch(/^Received message: datagram 0 from 127\.0\.0\.1:\d+\n$/);
    expect(r.stderr).toContain('status=0');
    expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
    const c = statsOf(r.stderr.replace(/\nstatus=\d+\n?$/, ''));
    expect(c.printed).toBeGreaterThanOrEqual(1);
    expect(c.printed + c.pending + c.queue + c.output).toBe(c.received);
    expect(c.pending).toBe(0);
  });

  it('a full disk is a runtime failure: one line and exit 1', async () => {
    const run = shell(`exec node ${CLI} listen 127.0.0.1 0 --count 1 > /dev/full`);
    const port = await portOf(run.stderr, run.child);
    const client = await bound();
    await client.send('hello', port);
    const r = await run.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `Listening on 127.0.0.1:${port}\n` +
        'udpkit listen: received 1 datagram (5 bytes), printed 0, not printed 1 (output 1)\n' +
        'udpkit listen: cannot write output: no space left on device (ENOSPC)\n',
    );
    const sent = await shell(`exec node ${CLI} send 127.0.0.1 ${port} hi > /dev/full`).exited;
    expect(sent.code).toBe(1);
    expect(sent.stderr).toBe('udpkit send: cannot write output: no space left on device (ENOSPC)\n');
  });
});

describe('help and version', () => {
  it.each([['--version'], ['listen', '--help'], ['send', '--help']])(
    '%j to a full disk is a runtime failure',
    async (...args) => {
      const r = await shell(`exec node ${CLI} ${args.join(' ')} > /dev/full`).exited;
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('udpkit: cannot write output: no space left on device (ENOSPC)\n');
    },
  );
});

describe('send counts exactly', () => {
  /** A port nobody listens on: bound, read back, released. */
  async function closedPort(): Promise<number> {
    const s = await bound();
    const port = s.address().port;
    await s.close();
    return port;
  }

  it('sends every datagram to a refused port and counts the ICMP reports (paced)', async () => {
    const port = await closedPort();
    const r = await runCli(['send', '127.0.0.1', String(port), '--count', '10', '--rate', '20']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^udpkit send: sent=10 bytes=640 refused=\d+ errors=0 elapsed=/);
    expect(Number(/refused=(\d+)/.exec(r.stderr)?.[1])).toBeGreaterThan(0);
  });

  it('sends every datagram to a refused port and counts the ICMP reports (flood)', async () => {
    const port = await closedPort();
    const r = await runCli(['send', '127.0.0.1', String(port), '--count', '20000'], { ms: 20_000 });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^udpkit send: sent=20000 bytes=1280000 refused=\d+ errors=0 elapsed=/);
  });

  it('waits for a slow reader of its reports instead of losing them', async () => {
    const server = await bound();
    const port = server.address().port;
    // 150k reports of about 240 bytes: 36 MB, past all that send may hold.
    const line = `${'r'.repeat(200)}\n`;
    const running = startCli(['send', '127.0.0.1', String(port)], {
      input: line.repeat(150_000),
      readStdout: false,
    });
    await new Promise((r) => setTimeout(r, 1000));
    running.readStdout();
    const r = await running.wait(60_000);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.match(/^Sent message: r{200} to /gm)).toHaveLength(150_000);
  });

  it('sends an argument that is not UTF-8 as its bytes', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await shell(`exec node ${CLI} send 127.0.0.1 ${port} $'\\xff\\xfe' $'ok\\xe9'`).exited;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `Sent message: \\xff\\xfe to 127.0.0.1:${port}\nSent message: ok\\xe9 to 127.0.0.1:${port}\n`,
    );
    const [a, b] = await receiveN(server, 2);
    expect(a?.data).toEqual(Buffer.from([0xff, 0xfe]));
    expect(b?.data).toEqual(Buffer.from([0x6f, 0x6b, 0xe9]));
  });

  it('matches each such argument by position, even when two decode alike', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await shell(
      `exec node ${CLI} send -q 127.0.0.1 ${port} $'\\xff' $'\\xfe' $'\\xfe\\xff' $'\\xff\\xfe'`,
    ).exited;
    expect(r.code).toBe(0);
    const got = await receiveN(server, 4);
    expect(got.map((m) => m.data.toString('hex'))).toEqual(['ff', 'fe', 'feff', 'fffe']);
  });

  it('refuses an argument holding U+FFFD: a wrapper may have replaced its bytes', async () => {
    // What npx hands over for $'\xff': the replacement character itself, as valid UTF-8.
    const r = await shell(`exec node ${CLI} send 127.0.0.1 9 ok $'\\xef\\xbf\\xbd'`).exited;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^udpkit send: message 2 holds U\+FFFD, .*--framing hex.*\n$/);
  });

  it('Ctrl-C on `producer | send` says it stopped, even when stdin ends at the same moment', async () => {
    const server = await bound();
    const port = server.address().port;
    // Its own process group, as a terminal makes for a pipeline: Ctrl-C reaches every member.
    const child = spawn(
      'bash',
      [
        '-c',
        `(echo one; echo two; exec sleep 30) | node ${CLI} send 127.0.0.1 ${port}; echo "status=\${PIPESTATUS[1]}" >&2`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    onTestFinished(() => {
      if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const closed = new Promise((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 5000;
    while (!out.includes('Sent message: two') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    process.kill(-(child.pid as number), 'SIGINT');
    await closed;
    expect(err).toBe('udpkit send: sent 2 datagrams (6 bytes)\nstatus=130\n');
  });

  it('fails an endless oversized input at once', async () => {
    const started = Date.now();
    const r = await runCli(['send', '127.0.0.1', '9', '--framing', 'whole', '--file', '/dev/zero']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('udpkit send: the input is over the 65507-byte limit (65508 bytes so far)\n');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('command lines that are not what they look like are usage errors', () => {
  it.each([
    [['listen', '12345abc'], "udpkit listen: '12345abc' is not a port number (0-65535) or an address"],
    [['listen', '1e3'], "udpkit listen: '1e3' is not a port number (0-65535) or an address"],
    [['listen', '1.2.3', '9000'], "udpkit listen: '1.2.3' is not a valid IPv4 address"],
    [['listen', '-4', '::1', '9000'], 'udpkit listen: -4 asks for IPv4, but ::1 is an IPv6 address'],
    [
      ['send', '-6', '127.0.0.1', '9', 'hi'],
      'udpkit send: -6 asks for IPv6, but 127.0.0.1 is an IPv4 address',
    ],
    [['send', '-4', '[::1]:9', 'hi'], 'udpkit send: -4 asks for IPv4, but ::1 is an IPv6 address'],
    [['send', '[fe80::1%', '9', 'hi'], "udpkit send: '[fe80::1%' has '[' without ']'"],
  ])('%j exits 2', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${message} (see 'udpkit ${args[0]} --help')\n`);
  });

  it('a first positional that starts with : or [ is a target', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await runCli(['send', `:${port}`, 'hi']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Sent message: hi to 127.0.0.1:${port}\n`);
    const v6 = await bound('::1');
    const r6 = await runCli(['send', '[::1]', String(v6.address().port), 'hi']);
    expect(r6.stdout).toBe(`Sent message: hi to [::1]:${v6.address().port}\n`);
    const [got] = await receiveN(v6, 1);
    expect(got?.data.toString()).toBe('hi');
  });

  it('--stats takes no value: listen --stats 0 binds a free port', async () => {
    const running = startCli(['listen', '127.0.0.1', '--stats', '0', '--count', '1']);
    const m = await running.waitFor('stderr', /Listening on 127\.0\.0\.1:(\d+)\n/);
    expect(Number(m[1])).toBeGreaterThan(0);
    running.child.kill('SIGINT');
    expect((await running.wait()).code).toBe(130);
  });

  it('a bind failure is one plain sentence', async () => {
    const r = await runCli(['listen', 'fe80::1%lo', '9000']);
    expect(r.code).toBe(1);
    // The addon's bind says EINVAL for a link-local address lo does not have; node:dgram's
    // resolves the scope first and says EADDRNOTAVAIL.
    expect(r.stderr).toMatch(
      /^udpkit listen: cannot bind \[fe80::1%lo\]:9000: (invalid argument \(EINVAL\)|the address is not available on this host)\n$/,
    );
  });
});
