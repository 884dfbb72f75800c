/**
 * Multicast for real: two network namespaces the test makes, joined by a veth pair, so that
 * nothing leaves the machine.
 */
import { describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { createLinkedNetns, type LinkedNetns } from '../helpers/netns.js';

async function listenIn(
  ns: LinkedNetns['b'],
  args: string[],
): Promise<{ wait: () => ReturnType<ReturnType<typeof startCli>['wait']>; port: string }> {
  const running = startCli(['listen', ...args], { prefix: ns.prefix });
  const port = (await running.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
  return { wait: () => running.wait(), port };
}

describe('multicast (two namespaces over veth)', () => {
  it('IPv4: --join on an interface receives what is sent out of the other end', async (context) => {
    const net = createLinkedNetns(context);
    const l = await listenIn(net.b, [
      '0.0.0.0',
      '0',
      '--join',
      '239.1.2.3',
      '--interface',
      'veth-b',
      '--count',
      '1',
    ]);
    const s = await runCli(['send', '239.1.2.3', l.port, 'to the group', '--interface', net.a.address], {
      prefix: net.a.prefix,
    });
    expect(s.code).toBe(0);
    const r = await l.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^Received message: to the group from ${net.a.address.replace(/\./g, '\\.')}:\\d+\\n$`),
    );
  });

  it('IPv6: --join ff15:: binds :: by itself and receives', async (context) => {
    const net = createLinkedNetns(context);
    const l = await listenIn(net.b, ['0', '--join', 'ff15::1234', '--interface', 'veth-b', '--count', '1']);
    const s = await runCli(['send', 'ff15::1234', l.port, 'six', '--interface', 'veth-a'], {
      prefix: net.a.prefix,
    });
    expect(s.code).toBe(0);
    const r = await l.wait();
    expect(r.stdout).toMatch(/^Received message: six from \[fd00:199:\d+::1\]:\d+\n$/);
  });

  it('source-specific: --source takes the group from that sender, and nobody else', async (context) => {
    const net = createLinkedNetns(context);
    const join = ['--join', '232.1.2.3', '--interface', 'veth-b'];
    const wanted = await listenIn(net.b, [
      '0.0.0.0',
      '0',
      ...join,
      '--source',
      net.a.address,
      '--count',
      '1',
    ]);
    const other = await listenIn(net.b, [
      '0.0.0.0',
      '0',
      ...join,
      '--source',
      '10.199.250.250',
      '--idle-timeout',
      '1',
    ]);
    for (const port of [wanted.port, other.port]) {
      const s = await runCli(['send', '232.1.2.3', port, 'ssm', '--interface', 'veth-a'], {
        prefix: net.a.prefix,
      });
      expect(s.code).toBe(0);
    }
    expect((await wanted.wait()).stdout).toMatch(/^Received message: ssm from /);
    const r = await other.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('multicast loopback: on by default, off with --no-multicast-loopback', async (context) => {
    const net = createLinkedNetns(context);
    const on = await listenIn(net.a, [
      '0.0.0.0',
      '0',
      '--join',
      '239.9.9.9',
      '--interface',
      'veth-a',
      '--idle-timeout',
      '1',
    ]);
    await runCli(['send', '239.9.9.9', on.port, 'looped', '--interface', 'veth-a'], { prefix: net.a.prefix });
    await runCli(
      ['send', '239.9.9.9', on.port, 'not looped', '--interface', 'veth-a', '--no-multicast-loopback'],
      {
        prefix: net.a.prefix,
      },
    );
    expect((await on.wait()).stdout).toMatch(/^Received message: looped from [^\n]*\n$/);
  });

  it('takes scoped IPv6 addresses (fe80::2%veth-b) to bind and to send to, and shows senders so', async (context) => {
    const net = createLinkedNetns(context);
    const l = await listenIn(net.b, ['fe80::2%veth-b', '0', '--count', '1']);
    const s = await runCli(['send', 'fe80::2%veth-a', l.port, 'link-local'], { prefix: net.a.prefix });
    expect(s.code).toBe(0);
    expect(s.stdout).toBe(`Sent message: link-local to [fe80::2%veth-a]:${l.port}\n`);
    const r = await l.wait();
    expect(r.stdout).toMatch(/^Received message: link-local from \[fe80::[0-9a-f:]+%veth-b\]:\d+\n$/);
  });

  it.each([
    [['listen', '127.0.0.1', '0', '--join', '10.0.0.1'], "--join: '10.0.0.1' is not a multicast group"],
    [
      ['listen', '127.0.0.1', '0', '--source', '10.0.0.1'],
      '--source applies to --join: give a group to join',
    ],
    [
      ['listen', '0', '--join', '239.1.1.1', '--interface', 'no-such-if0'],
      "no interface is named or has the address 'no-such-if0'",
    ],
    [
      ['listen', '-6', '0', '--join', '239.1.2.3'],
      '--join: 239.1.2.3 is an IPv4 group, and the socket is IPv6',
    ],
    [
      ['listen', '::', '0', '--join', '239.1.2.3'],
      '--join: 239.1.2.3 is an IPv4 group, and the socket is IPv6',
    ],
    [
      ['listen', '0', '--join', 'ff15::1', '--join', '239.1.2.3'],
      '--join: ff15::1 and 239.1.2.3 are of different families',
    ],
    [
      ['listen', '0', '--join', '239.1.2.3', '--source', '::1'],
      '--source: ::1 is IPv6, and the groups are IPv4',
    ],
    [
      ['listen', '0', '--show-dst', '-f', 'base64'],
      '--show-dst adds to text lines and hex headers, not to base64',
    ],
  ])('refuses %j', async (args, message) => {
    const r = await runCli(args);
    // An unknown interface is a fact of this machine, found at run time: exit 1.
    expect(r.code).toBe(message.startsWith('no interface') ? 1 : 2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
