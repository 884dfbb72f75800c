import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { bound, receiveN } from '../helpers/net.js';
import { createNetns } from '../helpers/netns.js';

function tempFile(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-test-'));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('udpkit send', () => {
  it('sends one datagram per argument and reports each', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await runCli(['send', '127.0.0.1', String(port), 'Hello', 'World', 'UDP']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `Sent message: Hello to 127.0.0.1:${port}\nSent message: World to 127.0.0.1:${port}\nSent message: UDP to 127.0.0.1:${port}\n`,
    );
    expect(r.stderr).toBe('');
    const got = await receiveN(server, 3);
    expect(got.map((m) => m.data.toString())).toEqual(['Hello', 'World', 'UDP']);
    // One socket for the whole run, like the classic client.
    expect(new Set(got.map((m) => m.from.port)).size).toBe(1);
  });

  it('sends every positional to 127.0.0.1:12345 when none names a target', async () => {
    const r = await runCli(['send', 'Hello', 'World', 'UDP']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'Sent message: Hello to 127.0.0.1:12345\nSent message: World to 127.0.0.1:12345\nSent message: UDP to 127.0.0.1:12345\n',
    );
  });

  it('-q sends silently', async () => {
    const server = await bound();
    const r = await runCli(['send', '-q', `127.0.0.1:${server.address().port}`, 'quiet']);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect((await receiveN(server, 1))[0]?.data.toString()).toBe('quiet');
  });

  it.each([
    ['[::1]:PORT', '::1', '[::1]'],
    ['::1 PORT', '::1', '[::1]'],
    ['localhost PORT', '127.0.0.1', '127.0.0.1'],
    ['localhost:PORT', '127.0.0.1', '127.0.0.1'],
  ])('reaches the target written as %s', async (form, address, shown) => {
    const server = await bound(address);
    const port = server.address().port;
    const target = form.replace('PORT', String(port)).split(' ');
    const r = await runCli(['send', ...target, 'hi']);
    expect(r.stdout).toBe(`Sent message: hi to ${shown}:${port}\n`);
    expect((await receiveN(server, 1))[0]?.data.toString()).toBe('hi');
  });

  it('reads stdin, one datagram per line, CR stripped, empty lines as empty datagrams', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await runCli(['send', '127.0.0.1', String(port)], { input: 'first\nsecond\r\n\nlast' });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      `Sent message: first to 127.0.0.1:${port}`,
      `Sent message: second to 127.0.0.1:${port}`,
      `Sent message:  to 127.0.0.1:${port}`,
      `Sent message: last to 127.0.0.1:${port}`,
      '',
    ]);
    expect((await receiveN(server, 4)).map((m) => m.data.toString())).toEqual([
      'first',
      'second',
      '',
      'last',
    ]);
  });

  it('escapes what it reports, and sends the bytes as they are', async () => {
    const server = await bound();
    const port = server.address().port;
    const r = await runCli(['send', '127.0.0.1', String(port), '--framing', 'hex'], {
      input: '1b5b326a ff 00\n',
    });
    expect(r.stdout).toBe(`Sent message: \\x1b[2j\\xff\\x00 to 127.0.0.1:${port}\n`);
    expect((await receiveN(server, 1))[0]?.data).toEqual(Buffer.from([0x1b, 0x5b, 0x32, 0x6a, 0xff, 0]));
  });

  it('--framing nul and whole', async () => {
    const server = await bound();
    const port = String(server.address().port);
    await runCli(['send', '-q', '127.0.0.1', port, '--framing', 'nul'], { input: 'a\nb\0c\0' });
    expect((await receiveN(server, 2)).map((m) => m.data.toString())).toEqual(['a\nb', 'c']);
    await runCli(['send', '-q', '127.0.0.1', port, '--framing', 'whole'], { input: 'all\nof\0it\n' });
    expect((await receiveN(server, 1))[0]?.data.toString()).toBe('all\nof\0it\n');
  });

  it('--file reads a file instead of stdin', async () => {
    const server = await bound();
    const file = tempFile('msgs.txt', 'from\nfile\n');
    const r = await runCli(['send', '-q', `127.0.0.1:${server.address().port}`, '--file', file], {
      input: 'not this\n',
    });
    expect(r.code).toBe(0);
    expect((await receiveN(server, 2)).map((m) => m.data.toString())).toEqual(['from', 'file']);
  });

  it('sends the largest IPv4 datagram; one byte more is an error naming length and limit, and nothing is sent', async () => {
    const server = await bound();
    const port = String(server.address().port);
    const ok = await runCli(['send', '-q', '127.0.0.1', port, 'x'.repeat(65507)]);
    expect(ok.code).toBe(0);
    expect((await receiveN(server, 1))[0]?.data.length).toBe(65507);
    const r = await runCli(['send', '127.0.0.1', port, 'first', 'y'.repeat(65508)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'udpkit send: message of 65508 bytes is over the 65507-byte limit of UDP over IPv4\n',
    );
    await expect(server.receive({ timeout: 200 })).rejects.toMatchObject({ code: 'UDP_ERR_TIMEOUT' });
  });

  it('stops at an oversized line from stdin: what came before is sent, nothing after', async () => {
    const server = await bound();
    const port = server.address().port;
    const input = `one\ntwo\n${'z'.repeat(70000)}\nnever\n`;
    const r = await runCli(['send', '127.0.0.1', String(port)], { input });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`Sent message: one to 127.0.0.1:${port}\nSent message: two to 127.0.0.1:${port}\n`);
    expect(r.stderr).toBe(
      'udpkit send: message 3 (line 3) is over the 65507-byte limit (65508 bytes so far)\n',
    );
    expect((await receiveN(server, 2)).map((m) => m.data.toString())).toEqual(['one', 'two']);
    await expect(server.receive({ timeout: 200 })).rejects.toMatchObject({ code: 'UDP_ERR_TIMEOUT' });
  });

  it('allows 65527 bytes over IPv6', async () => {
    const server = await bound('::1');
    const r = await runCli(['send', '-q', `[::1]:${server.address().port}`, '--framing', 'whole'], {
      input: Buffer.alloc(65527, 0x36),
    });
    expect(r.code).toBe(0);
    expect((await receiveN(server, 1))[0]?.data.length).toBe(65527);
  });

  it('Ctrl-C while reading stdin prints a summary and exits 130', async () => {
    const server = await bound();
    const running = startCli(['send', '127.0.0.1', String(server.address().port)]);
    onTestFinished(() => {
      running.child.stdin?.destroy();
    });
    running.child.stdin?.write('typed\n');
    await running.waitFor('stdout', /Sent message: typed/);
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('udpkit send: sent 1 datagram (5 bytes)\n');
  });
});

describe('udpkit send: bad input gets one line and the right exit status', () => {
  it.each([
    [
      ['send', '127.0.0.1', '70000', 'hi'],
      2,
      "port 70000 is out of range (0-65535) (see 'udpkit send --help')",
    ],
    [['send', 'localhost:99999', 'hi'], 2, "port 99999 is out of range (0-65535) (see 'udpkit send --help')"],
    [
      ['send', '127.0.0.1', '0', 'hi'],
      2,
      "port 0 is not a valid destination (1-65535) (see 'udpkit send --help')",
    ],
    [
      ['send', '--framing', 'csv'],
      2,
      "unknown framing 'csv' (allowed: line, nul, whole, hex) (see 'udpkit send --help')",
    ],
    [['send', '--nope'], 2, "unknown option '--nope' (see 'udpkit send --help')"],
    [
      ['send', 'hi', '--file', 'x'],
      2,
      "give messages as arguments or with --file, not both (see 'udpkit send --help')",
    ],
    [
      ['send', '-q', '127.0.0.1', '9', '--file', '/nonexistent/file'],
      1,
      "cannot read '/nonexistent/file': no such file",
    ],
  ])('%j exits %i', async (args, code, message) => {
    const r = await runCli(args);
    expect(r.stderr).toBe(`udpkit send: ${message}\n`);
    expect(r.code).toBe(code);
  });

  it('an unresolvable host: exit 1, one line, quickly', async (context) => {
    // Only loopback in the namespace, so the lookup fails at once without leaving the machine;
    // the resolver may call that "no such host" or a temporary failure (EAI_AGAIN).
    const { prefix } = createNetns(context);
    const started = Date.now();
    const r = await runCli(['send', 'no-such-host.invalid', '9000', 'hi'], { prefix });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^udpkit send: cannot resolve host 'no-such-host\.invalid': [^\n]+\n$/);
    expect(r.stdout).toBe('');
  });

  it('bad hex names the line: exit 1', async () => {
    const r = await runCli(['send', '-q', '127.0.0.1', '9', '--framing', 'hex'], { input: '00\nxyz\n' });
    expect(r.stderr).toBe("udpkit send: line 2: 'xyz' is not hex (expected pairs of 0-9a-f)\n");
    expect(r.code).toBe(1);
  });
});

describe('udpkit send --count: load generation', () => {
  it('sends n sequenced datagrams of the given size and reports sent=n on stderr', async () => {
    const { openUdpSocket, readSequence } = await import('../../src/lib/index.js');
    const server = await openUdpSocket({
      address: '127.0.0.1',
      port: 0,
      highWaterMark: 4096,
      recvBufferSize: 4 << 20,
    });
    onTestFinished(() => server.close());
    const r = await runCli([
      'send',
      '127.0.0.1',
      String(server.address().port),
      '--count',
      '2000',
      '--size',
      '100',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^udpkit send: sent=2000 bytes=200000 refused=0 errors=0 elapsed=\d+\.\d+s pps=\d+\n$/,
    );
    const got = await receiveN(server, 2000 - (server.kernelDrops ?? 0));
    const seqs = got.map((m) => readSequence(m.data));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(got.every((m) => m.data.length === 100)).toBe(true);
    expect(got[0]?.data.toString('latin1', 8, 12)).toBe('abcd');
  });

  it('--rate paces and still sends them all', async () => {
    const server = await bound();
    const r = await runCli([
      'send',
      '127.0.0.1',
      String(server.address().port),
      '-n',
      '50',
      '--rate',
      '1000',
    ]);
    expect(r.code).toBe(0);
    const elapsed = Number(/elapsed=(\d+\.\d+)s/.exec(r.stderr)?.[1]);
    // 50 at 1000/s: the last one is due 49 ms after the first.
    expect(elapsed).toBeGreaterThanOrEqual(0.049);
    expect((await receiveN(server, 50)).length).toBe(50);
  });

  it.each([
    [['-n', '5', 'hi'], '--count generates datagrams: give no messages, --file or --framing with it'],
    [['--size', '100'], '--size sets the size of generated datagrams: use it with --count'],
    [
      ['-n', '5', '--size', '4'],
      'size 4 is out of range (8-65507; 65527 over IPv6): the first 8 bytes hold the sequence number',
    ],
    [['-n', '5', '--rate', '0'], "rate '0' must be at least 1 datagram per second"],
    [
      ['-n', '5', '--rate', 'fast'],
      "rate 'fast' is not a number of datagrams per second (e.g. 1000, 50k, 1M)",
    ],
    [['-n', '0'], "count '0' is not a positive integer"],
  ])('%j is a usage error', async (args, message) => {
    const r = await runCli(['send', '127.0.0.1', '9', ...args]);
    expect(r.stderr).toBe(`udpkit send: ${message} (see 'udpkit send --help')\n`);
    expect(r.code).toBe(2);
  });
});
