/**
 * udpkit against programs not written here: the classic Python server and client, and
 * OpenBSD netcat (Debian's netcat-openbsd), in both directions.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli, start, startListener, waitForUdpPort } from '../helpers/cli.js';
import { needs } from '../helpers/net.js';

const peer = (name: string) => fileURLToPath(new URL(`../peers/${name}`, import.meta.url));

describe.runIf(needs('python3'))('with the classic Python peers', () => {
  it('seed_client.py sends to udpkit listen', async () => {
    const { running, port } = await startListener(['--count', '3']);
    const client = start('python3', [
      peer('seed_client.py'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      'Hello',
      'World',
      'UDP',
    ]);
    const c = await client.wait();
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('Sent message: Hello\nSent message: World\nSent message: UDP\n');
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Received message: Hello from 127\.0\.0\.1:(\d+)\nReceived message: World from 127\.0\.0\.1:\1\nReceived message: UDP from 127\.0\.0\.1:\1\n$/,
    );
  });

  it('udpkit send reaches seed_server.py', async () => {
    const server = start('python3', [
      peer('seed_server.py'),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--count',
      '3',
    ]);
    const port = await waitForUdpPort(server.child.pid as number);
    const s = await runCli(['send', '127.0.0.1', String(port), 'Hello', 'World', 'UDP']);
    expect(s.code).toBe(0);
    const r = await server.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Received message: Hello from \('127\.0\.0\.1', (\d+)\)\nReceived message: World from \('127\.0\.0\.1', \1\)\nReceived message: UDP from \('127\.0\.0\.1', \1\)\n$/,
    );
    expect(r.stderr).toMatch(/^received=3 /);
  });
});

describe.runIf(needs('nc.openbsd'))('with OpenBSD netcat (nc -u)', () => {
  it('nc -u sends to udpkit listen', async () => {
    const { running, port } = await startListener(['--count', '1']);
    // nc sends what it reads from stdin as one datagram, newline included.
    const nc = start('nc.openbsd', ['-u', '-w', '1', '127.0.0.1', String(port)], { input: 'hi from nc\n' });
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Received message: hi from nc\\n from 127\.0\.0\.1:\d+\n$/);
    nc.child.kill();
  });

  it('udpkit send reaches nc -u -l', async () => {
    const nc = start('nc.openbsd', ['-u', '-l', '127.0.0.1', '0']);
    const port = await waitForUdpPort(nc.child.pid as number);
    const s = await runCli(['send', '-q', '127.0.0.1', String(port)], { input: 'first line\nsecond\n' });
    expect(s.code).toBe(0);
    // nc writes each payload as it is, with no separator.
    await nc.waitFor('stdout', /first linesecond/);
    nc.child.kill();
  });

  it('nc -u sends binary bytes that udpkit prints as JSON', async () => {
    const { running, port } = await startListener(['--count', '1', '-f', 'json']);
    const nc = start('nc.openbsd', ['-u', '-w', '1', '127.0.0.1', String(port)], {
      input: Buffer.from([0xff, 0x00, 0x0a]),
    });
    const r = await running.wait();
    expect(JSON.parse(r.stdout)).toMatchObject({ size: 3, base64: '/wAK' });
    nc.child.kill();
  });
});
