import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createProxy, openUdpSocket, type PolicyDecision, type UdpSocket } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { runCli, start } from '../helpers/cli.js';
import { bound, needs } from '../helpers/net.js';
import { createNetns } from '../helpers/netns.js';

/** A server that answers each datagram `times` times with 're:' and its payload. */
async function answering(times = 1): Promise<UdpSocket> {
  const s = await bound();
  s.consume((m) => {
    for (let i = 0; i < times; i++)
      void s.send(Buffer.concat([Buffer.from('re:'), m.data]), m.from.port, m.from.address);
  });
  return s;
}

describe('udpkit send --wait', () => {
  it('prints each reply as listen does, and exits 0 once every datagram was answered', async () => {
    const server = await answering();
    const port = server.address().port;
    const r = await runCli(['send', '127.0.0.1', String(port), 'ping', 'pong', '--wait']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `Received message: re:ping from 127.0.0.1:${port}\nReceived message: re:pong from 127.0.0.1:${port}\n`,
    );
    expect(r.stderr).toBe('');
  });

  it('sends hex in and dumps hex out, for binary protocols', async () => {
    const server = await answering();
    const port = server.address().port;
    const r = await runCli(['send', '127.0.0.1', String(port), '--framing', 'hex', '--wait', '-f', 'hex'], {
      input: '00 ff 1b 41\n',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `Received 7 bytes from 127.0.0.1:${port}\n00000000  72 65 3a 00 ff 1b 41                              |re:...A|\n`,
    );
  });

  it("answers the DNS recipe of docs/cli.md with the dump it shows (a resolver of the test's own)", async () => {
    // A resolver on loopback that answers every A question with 192.0.2.1 as dnsmasq does
    // (authoritative, TTL 0): the recipe must not ask the machine's.
    const resolver = await bound();
    resolver.consume((q) => {
      const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
      const reply = Buffer.concat([q.data, answer]);
      reply.writeUInt16BE(0x8580, 2); // a response, authoritative, recursion available, no error
      reply.writeUInt16BE(1, 6); // one answer
      void resolver.send(reply, q.from.port, q.from.address);
    });
    const port = resolver.address().port;
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const recipe = doc.slice(doc.indexOf('**A DNS question, by hand.**'));
    const query = /printf '([^']+)\\n'/.exec(recipe)?.[1] as string;
    const dump = /the dump reads:\n\n```text\n([^`]+)```/.exec(recipe)?.[1] as string;
    const r = await runCli(
      [
        'send',
        '127.0.0.1',
        String(port),
        '--framing',
        'hex',
        '--wait',
        '--timeout',
        '2s',
        '--retries',
        '1',
        '-f',
        'hex',
      ],
      { input: `${query}\n` },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The lines the recipe shows, from this resolver's address.
    expect(r.stdout).toBe(dump.replace('127.0.0.53:53', `127.0.0.1:${port}`));
  });

  it.runIf(needs('dnsmasq'))(
    'runs the DNS recipe as written against a real resolver (dnsmasq, in a loopback-only namespace)',
    async (context) => {
      const ns = createNetns(context);
      // Its own answer for example.com and no upstream: nothing can leave the namespace anyway.
      const dnsmasq = start(
        'dnsmasq',
        [
          ...['-k', '--no-resolv', '--no-hosts', '--bind-interfaces', '--user=root', '--pid-file='],
          ...[
            '--listen-address=127.0.0.53',
            '--port=53',
            '--address=/example.com/192.0.2.1',
            '--log-facility=-',
          ],
        ],
        { prefix: ns.prefix },
      );
      await dnsmasq.waitFor('stderr', /started, version/);
      const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
      const recipe = doc.slice(doc.indexOf('**A DNS question, by hand.**'));
      const query = /printf '([^']+)\\n'/.exec(recipe)?.[1] as string;
      const command = /\| *\n *udpkit (send [^\n]+)/.exec(recipe)?.[1] as string;
      expect(command).toBe('send 127.0.0.53 53 --framing hex --wait --timeout 2s --retries 1 -f hex');
      const r = await runCli(command.split(' '), { input: `${query}\n`, prefix: ns.prefix });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // The dump the recipe shows, byte for byte.
      const dump = /the dump reads:\n\n```text\n([^`]+)```/.exec(recipe)?.[1];
      expect(r.stdout).toBe(dump);
    },
  );

  it('waits for --expect replies', async () => {
    const server = await answering(3);
    const r = await runCli([
      'send',
      '127.0.0.1',
      String(server.address().port),
      'x',
      '--wait',
      '--expect',
      '3',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
  });

  it.for(['native', 'dgram'])(
    'takes exactly --expect replies when more come (%s)',
    async (transport, context) => {
      if (transport === 'native' && !nativeAddon) context.skip('the native addon is not built');
      // Four answers to each of two datagrams, all there before the first is read.
      const server = await answering(4);
      const r = await runCli(
        ['send', '127.0.0.1', String(server.address().port), 'a', 'b', '--wait', '--expect', '2'],
        {
          env: { UDPKIT_NATIVE: transport === 'native' ? '1' : '0' },
        },
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Received message: re:a from [^\n]+\nReceived message: re:a from [^\n]+\n$/);
    },
  );

  it.each([
    ['the first two requests', 'up', 2, 0],
    ['the first answer', 'down', 1, 0],
    ['both requests of --retries 1', 'up', 2, 1],
  ] as const)(
    'over a lossy path (a proxy losing %s), --retries sends again until answered',
    async (_, lossy, lose, code) => {
      const server = await answering();
      // The proxy, with a policy: the first `lose` datagrams of the lossy direction are dropped.
      const proxy = await createProxy({
        target: { host: '127.0.0.1', port: server.address().port },
        policy: ({ direction, index }): PolicyDecision =>
          direction === lossy && index < lose ? 'drop' : 'pass',
      });
      try {
        const port = String(proxy.address().port);
        const retries = code === 0 ? '2' : '1';
        const r = await runCli([
          'send',
          '127.0.0.1',
          port,
          'ping',
          '--wait',
          '--timeout',
          '300ms',
          '--retries',
          retries,
        ]);
        expect(r.code).toBe(code);
        if (code === 0) {
          expect(r.stdout).toBe(`Received message: re:ping from 127.0.0.1:${port}\n`);
          expect(r.stderr).toBe('');
        } else {
          expect(r.stderr).toBe(`udpkit send: no reply from 127.0.0.1:${port} within 300ms (sent 2 times)\n`);
        }
        expect(proxy.stats(lossy).dropped.policy).toBe(lose);
      } finally {
        await proxy.close();
        await server.close();
      }
    },
  );

  it('times out against a socket that never answers: exit 1, one line, after every retry', async () => {
    const silent = await bound();
    let seen = 0;
    silent.consume(() => void seen++);
    const t0 = performance.now();
    const r = await runCli([
      'send',
      '127.0.0.1',
      String(silent.address().port),
      'anyone',
      '--wait',
      '--timeout',
      '200ms',
      '--retries',
      '2',
    ]);
    const took = performance.now() - t0;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `udpkit send: no reply from 127.0.0.1:${silent.address().port} within 200ms (sent 3 times)\n`,
    );
    expect(took).toBeGreaterThanOrEqual(600);
    expect(seen).toBe(3);
  });

  it('fails at once when the target answers ICMP port unreachable, not after the timeout', async () => {
    const gone = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    const port = gone.address().port;
    await gone.close();
    const t0 = performance.now();
    const r = await runCli(['send', '127.0.0.1', String(port), 'hello?', '--wait', '--timeout', '10s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`udpkit send: 127.0.0.1:${port} refused the datagram (ICMP port unreachable)\n`);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it.each([
    [['hi', '--timeout', '1s'], '--timeout applies to replies: use it with --wait'],
    [['hi', '-f', 'hex'], '--format and --timestamps apply to replies: use them with --wait'],
    [['--count', '5', '--wait'], '--wait waits for replies to messages: not with --count'],
    [['hi', '--wait', '--retries', 'two'], "retries 'two' is not a whole number (0 or more)"],
    [['hi', '--wait', '--expect', '0'], "expect '0' is not a positive integer"],
    [['hi', '--wait', '-f', 'yaml'], "unknown format 'yaml'"],
  ])('refuses %j with exit 2', async (args, message) => {
    const r = await runCli(['send', '127.0.0.1', '9', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
