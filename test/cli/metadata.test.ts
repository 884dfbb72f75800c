/**
 * Where each datagram arrived (--show-dst, json's to/interface/ttl) and echo answering from
 * the address a request was sent to: on loopback, whose 127.0.0.0/8 gives a host many
 * addresses, and across two network namespaces the test makes, one of them multi-homed.
 */
import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/lib/native.js';
import { runCli, startCli, startListener } from '../helpers/cli.js';
import { bound, receiveN } from '../helpers/net.js';
import { addAddress, createLinkedNetns } from '../helpers/netns.js';

const DGRAM = { env: { UDPKIT_NATIVE: '0' } };
// The native transport is required in CI, where it is built, except in the run of the CLI
// tests on node:dgram alone (UDPKIT_NATIVE=0), where the cases that need it skip.
const native = nativeAddon || (process.env.CI && process.env.UDPKIT_NATIVE !== '0') ? it : it.skip;

describe('where datagrams arrived', () => {
  native('--show-dst adds it to text lines and hex headers; json always has it', async () => {
    const text = await startListener(['--show-dst', '--count', '1'], '0.0.0.0');
    // A host may be told apart by the address it was reached at: 127.0.0.9, not .1.
    const client = await bound();
    await client.send('hi', text.port, '127.0.0.9');
    const t = await text.running.wait();
    expect(t.code).toBe(0);
    expect(t.stdout).toBe(
      `Received message: hi from 127.0.0.1:${client.address().port} to 127.0.0.9 on lo ttl 64\n`,
    );

    const hex = await startListener(['-f', 'hex', '--show-dst', '--count', '1'], '0.0.0.0');
    await client.send('hi', hex.port, '127.0.0.10');
    expect((await hex.running.wait()).stdout).toMatch(
      /^Received 2 bytes from 127\.0\.0\.1:\d+ to 127\.0\.0\.10 on lo ttl 64\n00000000 {2}68 69 /,
    );

    const json = await startListener(['-6', '-f', 'json', '--count', '2'], '::');
    await client.send('v4', json.port, '127.0.0.11');
    const six = await bound('::1');
    await six.send('v6', json.port, '::1');
    const lines = (await json.running.wait()).stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toMatchObject([
      {
        from: { address: '::ffff:127.0.0.1' },
        to: '::ffff:127.0.0.11',
        interface: 'lo',
        ttl: 64,
        text: 'v4',
      },
      { from: { address: '::1' }, to: '::1', interface: 'lo', ttl: 64, text: 'v6' },
    ]);
  });

  it('on node:dgram json has no to, interface or ttl, and --show-dst says it needs the addon', async () => {
    const json = await startListener(['-f', 'json', '--count', '1'], '127.0.0.1', 'listen', DGRAM);
    const client = await bound();
    await client.send('hi', json.port, '127.0.0.1');
    const line = JSON.parse((await json.running.wait()).stdout);
    expect(line).toMatchObject({ text: 'hi' });
    expect(Object.keys(line)).toEqual(['ts', 'from', 'size', 'text', 'base64']);

    const r = await runCli(['listen', '127.0.0.1', '0', '--show-dst'], DGRAM);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'udpkit listen: --show-dst needs the native transport (disabled by UDPKIT_NATIVE=0)\n',
    );
    const tie = await runCli(['listen', '127.0.0.1', '0', '--interface', 'lo'], DGRAM);
    expect(tie.code).toBe(1);
    expect(tie.stderr).toBe(
      'udpkit listen: tying a socket to an interface (lo) needs the native transport (disabled by UDPKIT_NATIVE=0)\n',
    );
  });

  native(
    'echo bound to 0.0.0.0 answers from the address it was sent to; node:dgram says it cannot',
    async () => {
      const { running, port } = await startListener(['--count', '2'], '0.0.0.0', 'echo');
      const client = await bound();
      await client.send('one', port, '127.0.0.7');
      await client.send('two', port, '127.0.0.8');
      const replies = await receiveN(client, 2);
      expect(replies.map((r) => `${r.data} ${r.from.address}:${r.from.port}`)).toEqual([
        `one 127.0.0.7:${port}`,
        `two 127.0.0.8:${port}`,
      ]);
      const r = await running.wait();
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain('routing table');

      const old = await startListener(['--count', '1'], '0.0.0.0', 'echo', DGRAM);
      await client.send('three', old.port, '127.0.0.7');
      const [reply] = await receiveN(client, 1);
      // What every server that ignores it does: the answer comes from another address.
      expect(reply?.from.address).toBe('127.0.0.1');
      expect((await old.running.wait()).stderr).toContain(
        'udpkit echo: on node:dgram a reply leaves from the address the routing table picks',
      );
    },
  );

  native(
    'a multi-homed echo answers send --wait at each of its addresses (two namespaces)',
    async (context) => {
      const net = createLinkedNetns(context);
      const second = net.b.address.replace(/\.2$/, '.3');
      const second6 = `${net.b.address6.replace(/::2$/, '::')}99`;
      addAddress(net.b, `${second}/24`, 'veth-b');
      addAddress(net.b, `${second6}/64`, 'veth-b');
      const echo4 = startCli(['echo', '0.0.0.0', '0', '--count', '2'], { prefix: net.b.prefix });
      const port4 = (await echo4.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
      const echo6 = startCli(['echo', '::', '0', '--count', '2'], { prefix: net.b.prefix });
      const port6 = (await echo6.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
      // send --wait connects to the address it sends to, as most clients do: an answer from
      // any other address never reaches it.
      for (const [to, port] of [
        [net.b.address, port4],
        [second, port4],
        [net.b.address6, port6],
        [second6, port6],
      ] as const) {
        const r = await runCli(['send', to, port, `to ${to}`, '--wait', '--timeout', '2s', '-q'], {
          prefix: net.a.prefix,
        });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^Received message: to ${to} from \\[?${to}\\]?:${port}\\n$`));
      }
      expect((await echo4.wait()).code).toBe(0);
      expect((await echo6.wait()).code).toBe(0);

      // On node:dgram the answer to the second address leaves from the first, and is lost.
      const old = startCli(['echo', '0.0.0.0', '0', '--count', '1'], { prefix: net.b.prefix, ...DGRAM });
      const port = (await old.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
      const lost = await runCli(['send', second, port, 'hello?', '--wait', '--timeout', '300ms'], {
        prefix: net.a.prefix,
      });
      expect(lost.code).toBe(1);
      expect(lost.stderr).toContain(`udpkit send: no reply from ${second}:${port} within 300ms`);
      await old.wait();
    },
  );

  native('--interface ties listen and send to one interface (two namespaces)', async (context) => {
    const net = createLinkedNetns(context);
    const l = startCli(['listen', '0.0.0.0', '0', '--interface', 'veth-b', '--show-dst', '--count', '2'], {
      prefix: net.b.prefix,
    });
    const port = (await l.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
    // First from its own namespace over lo (not taken: lo is not veth-b), then twice from the
    // other end of the veth. Loopback delivers within the send, so the first is refused before
    // the others leave: the two lines printed are the veth's.
    const local = await runCli(['send', '127.0.0.1', port, 'over lo'], { prefix: net.b.prefix });
    expect(local.code).toBe(0);
    for (const args of [['over veth'], ['tied', '--interface', 'veth-a']]) {
      const far = await runCli(['send', net.b.address, port, ...args], { prefix: net.a.prefix });
      expect(far.code).toBe(0);
    }
    const r = await l.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^Received message: over veth from ${net.a.address}:\\d+ to ${net.b.address} on veth-b ttl 64\n` +
          `Received message: tied from ${net.a.address}:\\d+ to ${net.b.address} on veth-b ttl 64\n$`,
      ),
    );

    // send --interface veth-a to 127.0.0.1 leaves through the veth, not lo: a listener on lo
    // hears only the datagram sent after it, untied.
    const own = startCli(['listen', '127.0.0.1', '0', '--count', '1'], { prefix: net.a.prefix });
    const ownPort = (await own.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
    for (const args of [['through the veth', '--interface', 'veth-a'], ['through lo']]) {
      const s = await runCli(['send', '127.0.0.1', ownPort, ...args], { prefix: net.a.prefix });
      expect(s.code).toBe(0);
    }
    expect((await own.wait()).stdout).toMatch(/^Received message: through lo from 127\.0\.0\.1:\d+\n$/);
  });

  native(
    'echo answers a group, a broadcast and a link-local request from its own address; send --wait hears it',
    async (context) => {
      const net = createLinkedNetns(context);
      const echo4 = startCli(
        [
          'echo',
          '0.0.0.0',
          '0',
          '--join',
          '239.7.7.7',
          '--interface',
          'veth-b',
          '-f',
          'json',
          '--count',
          '2',
        ],
        { prefix: net.b.prefix },
      );
      const port4 = (await echo4.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
      const echo6 = startCli(
        ['echo', '::', '0', '--join', 'ff15::77', '--interface', 'veth-b', '--count', '2'],
        {
          prefix: net.b.prefix,
        },
      );
      const port6 = (await echo6.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;
      // A group or a broadcast address is asked from a socket that hears whoever answers; a
      // group cannot be a reply's source, so the answer comes from the receiving interface.
      for (const [to, port, more, from] of [
        ['239.7.7.7', port4, ['--interface', 'veth-a', '--ttl', '3'], net.b.address],
        [net.broadcast, port4, ['--broadcast'], net.b.address],
        ['ff15::77', port6, ['--interface', 'veth-a'], `[${net.b.address6}]`],
        ['fe80::2%veth-a', port6, [], '[fe80::2%veth-a]'],
      ] as const) {
        const r = await runCli(['send', to, port, `to ${to}`, '--wait', '-q', ...more], {
          prefix: net.a.prefix,
        });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`Received message: to ${to} from ${from}:${port}\n`);
      }
      const r = await echo4.wait();
      expect(r.code).toBe(0);
      const [group, broadcast] = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(group).toMatchObject({
        from: { address: net.a.address },
        to: '239.7.7.7',
        interface: 'veth-b',
        ttl: 3,
      });
      expect(broadcast).toMatchObject({ to: net.broadcast, interface: 'veth-b', ttl: 64 });
      expect((await echo6.wait()).code).toBe(0);
    },
  );
});
