import { describe, expect, it } from 'vitest';
import { runCli, startListener } from '../helpers/cli.js';
import { bound } from '../helpers/net.js';
import { createNetns } from '../helpers/netns.js';

describe('listen --allow / --deny', () => {
  it('a deny rule provably drops a sender: not printed, counted, not counted against --count', async () => {
    const { running, port } = await startListener(['--deny', '127.0.0.3', '--allow', 'all', '--count', '2']);
    const friend = await bound('127.0.0.2');
    const stranger = await bound('127.0.0.3');
    await friend.send('one', port, '127.0.0.1');
    await stranger.send('secret', port, '127.0.0.1');
    await stranger.send('secret again', port, '127.0.0.1');
    await friend.send('two', port, '127.0.0.1');
    const r = await running.wait();
    expect(r.code).toBe(0);
    const f = friend.address().port;
    expect(r.stdout).toBe(
      `Received message: one from 127.0.0.2:${f}\nReceived message: two from 127.0.0.2:${f}\n`,
    );
    expect(r.stderr).toBe(
      `Listening on 127.0.0.1:${port}\nudpkit listen: received 4 datagrams (24 bytes), printed 2, denied 2 (--allow/--deny)\n`,
    );
  });

  it('applies the rules in order, first match wins, and the rest is denied once one allows', async () => {
    // 127.0.0.4 is inside the allowed /30 but denied first; 127.0.0.9 matches nothing.
    const { running, port } = await startListener([
      '--deny',
      '127.0.0.5',
      '--allow',
      '127.0.0.4/30',
      '--stats-interval',
      '60s',
      '--idle-timeout',
      '1',
    ]);
    for (const [address, text] of [
      ['127.0.0.4', 'in'],
      ['127.0.0.5', 'denied first'],
      ['127.0.0.9', 'outside'],
      ['127.0.0.6', 'in too'],
    ] as const) {
      const s = await bound(address);
      await s.send(text, port, '127.0.0.1');
    }
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' from ')[0]),
    ).toEqual(['Received message: in', 'Received message: in too']);
    expect(r.stderr).toMatch(
      /received=4 bytes=27 printed=2 pending=0 drops_queue=0 drops_output=0 drops_kernel=0 denied=2 /,
    );
  });

  it.for<[string[], string]>([
    [
      ['--allow', '10.1.2.3/8'],
      "--allow: '10.1.2.3/8' has bits set past its /8 prefix: did you mean 10.0.0.0/8?",
    ],
    [['--deny', 'example.invalid'], "--deny: 'example.invalid' is not an address block"],
    [['--allow', '::/129'], "--allow: '::/129': the prefix length must be 0-128 for IPv6"],
    [['--deny'], "option '--deny <cidr>' argument missing"],
  ])('refuses %j with one line and exit 2', async ([args, message], context) => {
    // In a namespace with only loopback: a block that looks like a name could not be looked up
    // off the machine even if something tried.
    const ns = createNetns(context);
    const r = await runCli(['listen', '127.0.0.1', '0', ...args], { prefix: ns.prefix });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });
});
