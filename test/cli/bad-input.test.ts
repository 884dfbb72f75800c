/**
 * Malformed command lines across every verb: each is refused with one line on stderr that names
 * the command, exit status 2, no stack trace and nothing on stdout. Each runs in a network
 * namespace that has only loopback, so that an argument that looks like a host name cannot
 * send a query off the machine, whatever the CLI did with it.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createNetns } from '../helpers/netns.js';

const BAD: string[][] = [
  ['listen', '--bogus'],
  ['listen', '127.0.0.1', '70000'],
  ['listen', '127.0.0.1', '-1'],
  ['listen', '127.0.0.1', 'port'],
  ['listen', '127.0.0.1', '9000', 'extra'],
  ['listen', '-4', '-6'],
  ['listen', '-6', '127.0.0.1', '0'],
  ['listen', '--format', 'xml'],
  ['listen', '--count', '0'],
  ['listen', '--count', '-3'],
  ['listen', '--count', '1.5'],
  ['listen', '--idle-timeout', '5q'],
  ['listen', '--idle-timeout', '-1s'],
  ['listen', '--rcvbuf', '0'],
  ['listen', '--rcvbuf', '4T'],
  ['listen', '--rcvbuf', 'lots'],
  ['listen', '--allow', '10.1.2.3/8'],
  ['listen', '--allow', '::/129'],
  ['listen', '--deny', '300.1.1.1/8'],
  ['listen', '--join', '10.0.0.1'],
  ['listen', '--source', '10.0.0.1'],
  ['listen', '--workers', '0'],
  ['listen', '--workers', '257'],
  ['listen', '--workers', 'x'],
  ['listen', '--steer', 'cpu'],
  ['listen', '--workers', '2', '--steer', 'round'],
  ['listen', '--stats-interval', '0'],
  ['listen', '--stats-interval', 'soon'],
  ['listen', '--receive-thread', '--count', '5'],
  ['listen', '--workers', '2', '--join', '239.1.2.3'],
  ['listen', '[::1'],
  ['listen', '127.0.0.1:'],
  ['send', '--count', 'x'],
  ['send', '--count', '0'],
  ['send', '--size', '0'],
  ['send', '--size', '70000'],
  ['send', '--size', '64', 'hi'],
  ['send', '--rate', 'fast'],
  ['send', '--rate', '-5'],
  ['send', '--rate', '0'],
  ['send', '--framing', 'xml'],
  ['send', '--framing', 'length:9'],
  ['send', '--file'],
  ['send', '--ttl', '300'],
  ['send', '--ttl', '-1'],
  ['send', '--timeout', '1s', 'hi'],
  ['send', '--retries', '2', 'hi'],
  ['send', '--expect', '0', '--wait', 'hi'],
  ['send', '--wait', '--format', 'xml', 'hi'],
  ['send', '127.0.0.1', '99999', 'hi'],
  ['send', '-4', '-6', 'hi'],
  ['send', '-4', '::1', '9', 'hi'],
  ['send', '--stats-interval', 'never', 'hi'],
  ['send', '--bogus'],
  ['echo', '--rate-limit', '0'],
  ['echo', '--rate-limit', '5', '--max-sources', 'x'],
  ['echo', '--max-sources', '0', '--rate-limit', '5'],
  ['echo', '--format', 'yaml'],
  ['echo', '127.0.0.1', '65536'],
  ['echo', '--workers', '2', '--rate-limit', '1'],
  ['proxy'],
  ['proxy', '--listen', '127.0.0.1:9000'],
  ['proxy', '--target', '127.0.0.1:9001'],
  ['proxy', '--listen', '127.0.0.1', '--target', '127.0.0.1:9001'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--loss', '150%'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--loss', 'lots'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--delay', '-5ms'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--delay', '10parsecs'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--jitter', '5ms'],
  [
    'proxy',
    '--listen',
    '127.0.0.1:9000',
    '--target',
    '127.0.0.1:9001',
    '--distribution',
    'weird',
    '--delay',
    '10ms',
    '--jitter',
    '1ms',
  ],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--duplicate', '101%'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--rate', '10', 'bananas'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--rate', 'fast'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--max-flows', '0'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--seed', 'x'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--mtu', '10'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--gap', '3'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--burst', '4'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--match', '10.0.0.0/33'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--slot', 'nonsense'],
  ['proxy', '--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9001', '--up', 'loss 200%'],
  ['bench'],
  ['bench', 'client'],
  ['bench', 'client', '127.0.0.1', '--mode', 'sideways'],
  ['bench', 'client', '127.0.0.1', '--rate', 'x'],
  ['bench', 'client', '127.0.0.1', '--size', '10'],
  ['bench', 'client', '127.0.0.1', '--size', '70000'],
  ['bench', 'client', '127.0.0.1', '--rate', '1k', '--bitrate', '1M'],
  ['bench', 'client', '127.0.0.1', '--duration', '0'],
  ['bench', 'client', '127.0.0.1', '--duration', '1s', '--count', '10'],
  ['bench', 'client', '127.0.0.1', '--interval', '1ms'],
  ['bench', 'client', '127.0.0.1', '--isochronous', '50'],
  ['bench', 'client', '127.0.0.1', '--size-dist', 'weird'],
  ['bench', 'client', '127.0.0.1', '--json', '--json-stream'],
  ['bench', 'client', '127.0.0.1', '--connect-timeout', 'never'],
  ['bench', 'server', '--workers', '0'],
  ['bench', 'server', '127.0.0.1', '99999'],
  ['bench', 'server', '--bogus'],
  ['nonsense'],
  ['listen', '--workers'],
  ['send', '--file', '/nonexistent/dir/x', '--framing', 'line', 'extra'],
];

describe.concurrent('bad input', () => {
  it('the matrix holds at least 60 command lines, over every verb', () => {
    expect(BAD.length).toBeGreaterThanOrEqual(60);
    const verbs = new Set(BAD.map((args) => (args[0] === 'bench' ? `bench ${args[1] ?? ''}` : args[0])));
    for (const verb of ['listen', 'send', 'echo', 'proxy', 'bench client', 'bench server', 'bench ']) {
      expect(verbs).toContain(verb);
    }
  });

  it.for(BAD.map((args) => ({ args, line: args.join(' ') })))(
    'refuses $line: one line naming the command, exit 2, no stack trace',
    async ({ args }, context) => {
      const ns = createNetns(context);
      const r = await runCli(args, { prefix: ns.prefix, ms: 5000, context });
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect(r.code, r.stderr).toBe(2);
      expect(lines, r.stderr).toHaveLength(1);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).toBe('');
      const verb =
        args[0] === 'bench' && (args[1] === 'client' || args[1] === 'server') ? `bench ${args[1]}` : args[0];
      const known = ['listen', 'send', 'echo', 'proxy', 'bench', 'bench client', 'bench server'].includes(
        verb as string,
      );
      expect(lines[0]).toMatch(
        known ? new RegExp(`^udpkit ${verb}: .+ \\(see 'udpkit ${verb} --help'\\)$`) : /^udpkit: /,
      );
    },
  );
});
