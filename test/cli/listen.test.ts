import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/lib/native.js';
import { CLI, runCli, startCli, startListener } from '../helpers/cli.js';
import { bound, sendFrom } from '../helpers/net.js';
import { createNetns } from '../helpers/netns.js';

describe('udpkit listen', () => {
  it('prints the classic line per datagram and exits 0 after --count', async () => {
    const { running, port } = await startListener(['--count', '3']);
    const from = await sendFrom(port, ['Hello', 'World', 'UDP']);
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `Received message: Hello from 127.0.0.1:${from}\n` +
        `Received message: World from 127.0.0.1:${from}\n` +
        `Received message: UDP from 127.0.0.1:${from}\n`,
    );
    expect(r.stderr).toBe(`Listening on 127.0.0.1:${port}\n`);
  });

  it('says when the kernel grants less receive buffer than asked; with the default, only under 4M', async () => {
    // node:dgram sets the buffer without SO_RCVBUFFORCE: the kernel grants twice what it
    // allows, at most net.core.rmem_max.
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const env = { UDPKIT_NATIVE: '0' };
    const asked = 256 * 1024 * 1024;
    const granted = 2 * Math.min(asked, rmemMax);
    const one = await startListener(['--count', '1', '--rcvbuf', '256M'], '127.0.0.1', 'listen', { env });
    await sendFrom(one.port, ['x']);
    const r1 = await one.running.wait();
    const warning = `udpkit listen: asked for a ${asked}-byte receive buffer, the kernel granted ${granted} (raise net.core.rmem_max to allow more)\n`;
    expect(r1.stderr.includes(warning)).toBe(granted < asked);
    const byDefault = await startListener(['--count', '1'], '127.0.0.1', 'listen', { env });
    await sendFrom(byDefault.port, ['x']);
    const r2 = await byDefault.running.wait();
    expect(r2.stderr.includes('receive buffer')).toBe(2 * Math.min(32 << 20, rmemMax) < 8 << 20);
  });

  it('listens on IPv6 and writes senders as [v6]:port', async () => {
    const { running, port } = await startListener(['--count', '1'], '::1');
    const from = await sendFrom(port, ['six'], '::1');
    const r = await running.wait();
    expect(r.stdout).toBe(`Received message: six from [::1]:${from}\n`);
    expect(r.stderr).toBe(`Listening on [::1]:${port}\n`);
  });

  it.each([
    [['[::1]:0'], '[::1]'],
    [['localhost', '0'], '127.0.0.1'],
    [['127.0.0.1:0'], '127.0.0.1'],
    [['-6', '0'], '[::]'],
  ])('accepts the address as %j', async (args, shown) => {
    const running = startCli(['listen', ...args, '--count', '1']);
    const m = await running.waitFor('stderr', /Listening on (.*):(\d+)\n/);
    expect(m[1]).toBe(shown);
    await sendFrom(Number(m[2]), ['x'], shown === '[::1]' || shown === '[::]' ? '::1' : '127.0.0.1');
    expect((await running.wait()).code).toBe(0);
  });

  it('escapes control bytes and invalid UTF-8, and survives any payload', async () => {
    const { running, port } = await startListener(['--count', '4']);
    const hostile = Buffer.concat([
      Buffer.from('\x1b]0;pwned\x07\x1b[2J'),
      Buffer.from([0xff, 0xfe, 0x0a, 0x00]),
    ]);
    await sendFrom(port, [hostile, Buffer.from('ok\r\n'), Buffer.alloc(0), Buffer.from('héllo \\ ✓')]);
    const r = await running.wait();
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^Received message: \\x1b\]0;pwned\\x07\\x1b\[2J\\xff\\xfe\\n\\x00 from 127\.0\.0\.1:\d+$/,
    );
    expect(lines[1]).toMatch(/^Received message: ok\\r\\n from /);
    expect(lines[2]).toMatch(/^Received message: {2}from /);
    expect(lines[3]).toMatch(/^Received message: héllo \\\\ ✓ from /);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no raw control byte may reach the terminal
    expect(r.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
  });

  it.each([
    ['IPv4', '127.0.0.1', 65507],
    ['IPv6', '::1', 65527],
  ])('prints the largest %s datagram whole (to %s, %i bytes)', async (_family, host, size) => {
    const { running, port } = await startListener(['--count', '1', '--format', 'raw'], host);
    const big = Buffer.alloc(size, 0x41);
    big.write('END', size - 3);
    await sendFrom(port, [big], host);
    const r = await running.wait();
    expect(Buffer.concat(running.stdoutBytes)).toEqual(Buffer.concat([big, Buffer.from('\n')]));
    expect(r.code).toBe(0);
  });

  it('--format raw writes payload bytes and a newline', async () => {
    const { running, port } = await startListener(['--count', '2', '-f', 'raw']);
    await sendFrom(port, [Buffer.from([0, 0xff, 0x1b]), 'two']);
    await running.wait();
    expect(Buffer.concat(running.stdoutBytes)).toEqual(
      Buffer.from([0, 0xff, 0x1b, 0x0a, 0x74, 0x77, 0x6f, 0x0a]),
    );
  });

  it('--format hex dumps with a header', async () => {
    const { running, port } = await startListener(['--count', '1', '-f', 'hex']);
    const from = await sendFrom(port, ['Hello, hex dump!\x00']);
    const r = await running.wait();
    expect(r.stdout).toBe(
      `Received 17 bytes from 127.0.0.1:${from}\n` +
        '00000000  48 65 6c 6c 6f 2c 20 68  65 78 20 64 75 6d 70 21  |Hello, hex dump!|\n' +
        '00000010  00                                                |.|\n',
    );
  });

  it('--format base64 writes one line per datagram', async () => {
    const { running, port } = await startListener(['--count', '2', '-f', 'base64']);
    await sendFrom(port, [Buffer.from([0xff, 0, 1]), '']);
    expect((await running.wait()).stdout).toBe('/wAB\n\n');
  });

  it('--format json writes one object per line', async () => {
    const { running, port } = await startListener(['--count', '2', '--format', 'json']);
    const before = Date.now();
    const from = await sendFrom(port, ['hi\n', Buffer.from([0xc3, 0x28])]);
    const r = await running.wait();
    const [a, b] = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(a).toEqual({
      ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
      from: { address: '127.0.0.1', port: from, family: 'IPv4' },
      // Where it arrived: the native transport asks the kernel (see metadata.test.ts for dgram).
      ...(nativeAddon && { to: '127.0.0.1', interface: 'lo', ttl: 64 }),
      size: 3,
      text: 'hi\n',
      base64: 'aGkK',
    });
    expect(Date.parse(a.ts)).toBeGreaterThanOrEqual(before - 1000);
    expect(b).not.toHaveProperty('text');
    expect(b).toMatchObject({ size: 2, base64: 'wyg=' });
  });

  it('--timestamps prefixes text lines with the receive time', async () => {
    const { running, port } = await startListener(['--count', '1', '-t']);
    await sendFrom(port, ['tick']);
    expect((await running.wait()).stdout).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z Received message: tick from 127\.0\.0\.1:\d+\n$/,
    );
  });

  it('--idle-timeout exits 0 after silence', async () => {
    const { running, port } = await startListener(['--idle-timeout', '300ms']);
    await sendFrom(port, ['one']);
    const r = await running.wait(5000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Received message: one from /);
  });

  it('Ctrl-C prints a one-line summary to stderr and exits 130', async () => {
    const { running, port } = await startListener();
    await sendFrom(port, ['a', 'bc']);
    await running.waitFor('stdout', /bc from/);
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    expect(r.stderr).toBe(
      `Listening on 127.0.0.1:${port}\nudpkit listen: received 2 datagrams (3 bytes), printed 2\n`,
    );
  });

  it('exits cleanly when the reader goes away (listen | head -1)', async () => {
    const sh = spawn('bash', [
      '-c',
      `node ${CLI} listen 127.0.0.1 0 | head -1; echo "status=\${PIPESTATUS[0]}" >&2`,
    ]);
    let stdout = '';
    let stderr = '';
    sh.stdout.on('data', (d) => {
      stdout += d;
    });
    sh.stderr.on('data', (d) => {
      stderr += d;
    });
    const done = new Promise<number | null>((resolve) => sh.on('close', resolve));
    const deadline = Date.now() + 5000;
    while (!/Listening on .*:(\d+)/.test(stderr) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const port = Number(/Listening on .*:(\d+)/.exec(stderr)?.[1]);
    const client = await bound();
    // head takes the first line and leaves; each later datagram is a write into a closed pipe.
    for (let i = 0; i < 50 && sh.exitCode === null; i++) {
      await client.send(`line ${i}`, port);
      await new Promise((r) => setTimeout(r, 20));
    }
    await done;
    expect(stdout).toMatch(/^Received message: line 0 from 127\.0\.0\.1:\d+\n$/);
    expect(stderr).toMatch(/status=0\n$/);
    expect(stderr).not.toMatch(/EPIPE|Error|at /);
  });

  it('binds 0.0.0.0:12345 by default', async () => {
    const running = startCli(['listen']);
    const r = await Promise.race([
      running.waitFor('stderr', /Listening on 0\.0\.0\.0:12345\n/).then(() => 'listening'),
      running.exited.then((res) => res.stderr),
    ]);
    if (r === 'listening') {
      running.child.kill('SIGINT');
      expect((await running.wait()).code).toBe(130);
    } else {
      // Something else holds 12345 on this machine: the error must say so.
      expect(r).toBe('udpkit listen: address 0.0.0.0:12345 is already in use\n');
    }
  });
});

describe('udpkit listen: bad input gets one line and the right exit status', () => {
  it.each([
    [
      ['listen', '127.0.0.1', '70000'],
      2,
      "udpkit listen: port 70000 is out of range (0-65535) (see 'udpkit listen --help')",
    ],
    [
      ['listen', '127.0.0.1', 'abc'],
      2,
      "udpkit listen: port 'abc' is not a number (0-65535) (see 'udpkit listen --help')",
    ],
    [
      ['listen', '99999'],
      2,
      "udpkit listen: port 99999 is out of range (0-65535) (see 'udpkit listen --help')",
    ],
    [['listen', '--bogus'], 2, "udpkit listen: unknown option '--bogus' (see 'udpkit listen --help')"],
    [
      ['listen', '-f', 'xml'],
      2,
      "udpkit listen: unknown format 'xml' (allowed: text, raw, hex, base64, json) (see 'udpkit listen --help')",
    ],
    [
      ['listen', '--count', '0'],
      2,
      "udpkit listen: count '0' is not a positive integer (see 'udpkit listen --help')",
    ],
    [
      ['listen', '-w', 'soon'],
      2,
      "udpkit listen: idle timeout 'soon' is not a duration (e.g. 500ms, 5s, 2m; a bare number is seconds) (see 'udpkit listen --help')",
    ],
    [
      ['listen', 'a', 'b', 'c'],
      2,
      "udpkit listen: too many arguments for 'listen'. Expected 2 arguments but got 3. (see 'udpkit listen --help')",
    ],
    [
      ['listen', '-4', '-6'],
      2,
      "udpkit listen: -4 and -6 cannot be used together (see 'udpkit listen --help')",
    ],
    [
      ['listen', '::1', '0', '-4'],
      2,
      "udpkit listen: -4 asks for IPv4, but ::1 is an IPv6 address (see 'udpkit listen --help')",
    ],
    [['frobnicate'], 2, "udpkit: unknown command 'frobnicate'"],
  ])('%j exits %i', async (args, code, message) => {
    const r = await runCli(args);
    expect(r.stderr).toBe(`${message}\n`);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
  });

  it('an unresolvable host: exit 1, one line, quickly', async (context) => {
    // Only loopback in the namespace, so the lookup fails at once without leaving the machine;
    // the resolver may call that "no such host" or a temporary failure (EAI_AGAIN).
    const { prefix } = createNetns(context);
    const started = Date.now();
    const r = await runCli(['listen', 'no-such-host.invalid', '0'], { prefix });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^udpkit listen: cannot resolve host 'no-such-host\.invalid': [^\n]+\n$/);
    expect(r.stdout).toBe('');
  });

  it('address already in use: exit 1', async () => {
    const taken = await bound();
    const port = taken.address().port;
    const r = await runCli(['listen', '127.0.0.1', String(port)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`udpkit listen: address 127.0.0.1:${port} is already in use\n`);
  });

  it.runIf(process.getuid?.() === 0)('permission denied for a privileged port: exit 1', async () => {
    // As an unprivileged user (nobody), ports below 1024 are refused.
    const running = startCli(['listen', '127.0.0.1', '80'], { uid: 65534 });
    const r = await running.wait();
    expect(r.stderr).toBe(
      'udpkit listen: permission denied to bind 127.0.0.1:80 (ports below 1024 need root or CAP_NET_BIND_SERVICE)\n',
    );
    expect(r.code).toBe(1);
  });

  it('no command prints help to stderr and exits 2', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Usage: udpkit/);
  });

  it('--help exits 0 and states the rules', async () => {
    const r = await runCli(['send', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('The first positionals name the target when they look like one');
    expect(r.stdout).toContain('A target without a port gets port 12345.');
  });
});

describe('listen --receive-thread', () => {
  const DGRAM = { env: { UDPKIT_NATIVE: '0' } };
  const native = nativeAddon || (process.env.CI && process.env.UDPKIT_NATIVE !== '0') ? it : it.skip;

  native('prints every datagram once, in order, and --stats says how often its ring was full', async () => {
    const { running, port } = await startListener(['--receive-thread', '--idle-timeout', '500ms', '--stats']);
    const client = await bound();
    const sent = Array.from({ length: 2000 }, (_, i) => `m${i}`);
    for (let i = 0; i < sent.length; i += 100)
      await client.sendEach(sent.slice(i, i + 100), port, '127.0.0.1');
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ')[2]),
    ).toEqual(sent);
    expect(r.stderr).toMatch(/udpkit listen: received=2000 bytes=\d+ printed=2000 .*ring_full=\d+/);
  });

  it('refuses --count with it (exit 2), and says it needs the addon on node:dgram (exit 1)', async () => {
    const withCount = await runCli(['listen', '127.0.0.1', '0', '--receive-thread', '--count', '3']);
    expect(withCount.code).toBe(2);
    expect(withCount.stdout).toBe('');
    expect(withCount.stderr).toMatch(
      /^udpkit listen: --receive-thread reads ahead of the count: not with --count/,
    );
    const dgram = await runCli(['listen', '127.0.0.1', '0', '--receive-thread'], DGRAM);
    expect(dgram.code).toBe(1);
    expect(dgram.stderr).toBe(
      'udpkit listen: --receive-thread needs the native transport (disabled by UDPKIT_NATIVE=0)\n',
    );
  });
});
