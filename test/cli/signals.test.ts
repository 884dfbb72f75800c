/**
 * SIGINT and SIGTERM during every verb: a clean exit with the documented status (130, 143), the
 * verb's one-line summary last on stderr and no stack trace; and a second Ctrl-C that does not
 * wait for what the first one lets finish.
 */
import { describe, expect, it } from 'vitest';
import { CLI, start, startCli, udpPortsOf } from '../helpers/cli.js';
import { bound } from '../helpers/net.js';
import { until } from '../helpers/time.js';

/** A verb started on loopback: what says it is ready, and what its summary looks like. */
interface Verb {
  name: string;
  args: (port: number) => string[];
  ready: RegExp;
  summary: RegExp;
  /** Needs a bench server to talk to. */
  server?: boolean;
}

const VERBS: Verb[] = [
  {
    name: 'listen',
    args: () => ['listen', '127.0.0.1', '0'],
    ready: /Listening on/,
    summary: /^udpkit listen: received \d+ datagrams? \(\d+ bytes?\), printed \d+/,
  },
  {
    name: 'echo',
    args: () => ['echo', '127.0.0.1', '0'],
    ready: /Listening on/,
    summary: /^udpkit echo: received \d+ datagrams? .*; answered \d+/,
  },
  {
    name: 'send',
    args: () => [
      'send',
      '127.0.0.1',
      '9',
      '--count',
      '100000',
      '--rate',
      '1000',
      '--stats-interval',
      '100ms',
    ],
    ready: /udpkit send: t=/,
    summary: /^udpkit send: sent=\d+ bytes=\d+ .* elapsed=/,
  },
  {
    name: 'proxy',
    args: () => ['proxy', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:9'],
    ready: /Proxying/,
    summary: /^udpkit proxy: up: received \d+, forwarded \d+; down: /,
  },
  {
    name: 'bench server',
    args: () => ['bench', 'server', '127.0.0.1', '0'],
    ready: /Bench server on/,
    summary: /^udpkit bench server: foreign \d+, garbled \d+/,
  },
  {
    name: 'bench client',
    args: (port) => [
      'bench',
      'client',
      '127.0.0.1',
      String(port),
      '-t',
      '30s',
      '-i',
      '100ms',
      '--rate',
      '1000',
    ],
    ready: /\d+\.\d+-\d+\.\d+ s/,
    summary: /^udpkit bench client: stopped early: the report covers what was sent until then$/,
    server: true,
  },
];

describe('signals', () => {
  it.for(
    VERBS.flatMap((verb) =>
      (['SIGINT', 'SIGTERM'] as const).map((signal) => ({ verb, signal, name: verb.name })),
    ),
  )('$name stopped by $signal: exit status, the summary last, no stack trace', async ({ verb, signal }) => {
    let port = 9;
    if (verb.server) {
      const server = startCli(['bench', 'server', '127.0.0.1', '0']);
      port = Number((await server.waitFor('stderr', /Bench server on .*:(\d+)/))[1]);
    }
    const running = startCli(verb.args(port));
    await running.waitFor(verb.name === 'bench client' ? 'stdout' : 'stderr', verb.ready, 10_000);
    running.child.kill(signal);
    const r = await running.wait(10_000);
    expect(r.code, r.stderr).toBe(signal === 'SIGINT' ? 130 : 143);
    const last = r.stderr.trimEnd().split('\n').at(-1) as string;
    expect(last).toMatch(verb.summary);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  /** `udpkit ARGS | head -1` in bash: resolves to the pipeline's stderr, with udpkit's status last. */
  const headOne = (args: string) =>
    start('bash', [
      '-c',
      `"${process.execPath}" "${CLI}" ${args} | head -1 >/dev/null; echo "status=\${PIPESTATUS[0]}" >&2`,
    ]);

  it.for([
    {
      name: 'send, a line per message',
      args: () => `send 127.0.0.1 9 ${Array.from({ length: 3000 }, (_, i) => `m${i}`).join(' ')}`,
    },
    { name: 'echo, a line per datagram', args: () => 'echo 127.0.0.1 0', feed: true },
    {
      name: 'bench client, its reports',
      args: (port: number) => `bench client 127.0.0.1 ${port} -t 30s -i 100ms --rate 1000`,
      server: true,
    },
  ])('$name | head -1: exit 0, no trace', async ({ args, feed, server }) => {
    let port = 9;
    if (server) {
      const s = startCli(['bench', 'server', '127.0.0.1', '0']);
      port = Number((await s.waitFor('stderr', /Bench server on .*:(\d+)/))[1]);
    }
    const running = headOne(args(port));
    if (feed) {
      const at = Number((await running.waitFor('stderr', /Listening on .*:(\d+)/))[1]);
      const client = await bound();
      // head takes the first line and leaves; the later ones are writes into a closed pipe.
      for (let i = 0; i < 200 && running.child.exitCode === null; i++) {
        await client.send(`line ${i}`, at);
        await new Promise((r) => setImmediate(r));
      }
    }
    const r = await running.wait(10_000);
    expect(r.stderr).toMatch(/status=0\n$/);
    expect(r.stderr).not.toMatch(/^\s+at |EPIPE|Error/m);
  });

  it('a second Ctrl-C exits at once: listen does not wait out the second it gives a stalled reader', async () => {
    // stdout is a pipe nobody reads: the first Ctrl-C gives the reader a second more.
    const running = startCli(['listen', '127.0.0.1', '0', '--rcvbuf', '4M', '--stats-interval', '50ms'], {
      readStdout: false,
    });
    const port = Number((await running.waitFor('stderr', /Listening on .*:(\d+)/))[1]);
    const client = await bound();
    const payload = Buffer.alloc(1000 * 200, 0x61);
    const lengths = new Uint32Array(200).fill(1000);
    for (let round = 0; round < 40; round++) await client.sendPacked(payload, lengths, 200, port);
    await running.waitFor('stderr', /pending=[1-9]/, 5000);
    const pid = running.child.pid as number;
    running.child.kill('SIGINT');
    const first = performance.now();
    // The first one is taken once the socket is closed: it then waits on the reader. A second
    // within 50 ms counts as the same one delivered twice (to the process and its group), so
    // the second comes after that, as a person's would.
    await until(() => !udpPortsOf(pid).includes(port) && performance.now() - first > 100, 5000);
    const second = performance.now();
    running.child.kill('SIGINT');
    const r = await running.wait(5000);
    expect(r.code).toBe(130);
    expect(performance.now() - second).toBeLessThan(500); // the first alone waits 1000 ms
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
