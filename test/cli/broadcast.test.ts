/**
 * Broadcast and hop limits for real: two network namespaces the test makes, joined by a veth
 * pair, so that nothing leaves the machine.
 */
import { describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { createLinkedNetns } from '../helpers/netns.js';

describe('send --broadcast, --ttl (two namespaces over veth)', () => {
  it('reaches a listener on the subnet through its broadcast address, and only with --broadcast', async (context) => {
    const net = createLinkedNetns(context);
    const listener = startCli(['listen', '0.0.0.0', '0', '--count', '1'], { prefix: net.b.prefix });
    const port = (await listener.waitFor('stderr', /Listening on .*:(\d+)\n/))[1] as string;

    const refused = await runCli(['send', net.broadcast, port, 'no flag'], { prefix: net.a.prefix });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `udpkit send: permission denied to send to ${net.broadcast}:${port} (to send to a broadcast address, add --broadcast)\n`,
    );

    const sent = await runCli(['send', net.broadcast, port, 'to all', '--broadcast', '--ttl', '1'], {
      prefix: net.a.prefix,
    });
    expect(sent.code).toBe(0);
    expect(sent.stdout).toBe(`Sent message: to all to ${net.broadcast}:${port}\n`);
    const r = await listener.wait();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^Received message: to all from ${net.a.address.replace(/\./g, '\\.')}:\\d+\\n$`),
    );
  });

  it('refuses a hop limit outside 1-255', async () => {
    const r = await runCli(['send', '127.0.0.1', '9', 'x', '--ttl', '256']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("udpkit send: ttl '256' is not a hop limit (1-255) (see 'udpkit send --help')\n");
  });
});
