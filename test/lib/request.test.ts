import { describe, expect, it, onTestFinished } from 'vitest';
import { openUdpSocket, Requester, request, type UdpSocket } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';

const TRANSPORTS = nativeAddon || process.env.CI ? (['dgram', 'native'] as const) : (['dgram'] as const);

describe.each(TRANSPORTS)('request() on %s', (transport) => {
  async function open(): Promise<UdpSocket> {
    const socket = await openUdpSocket({ address: '127.0.0.1', port: 0, transport });
    onTestFinished(() => socket.close());
    return socket;
  }

  /** An echo server answering after `delay` ms, or only from the `answerFrom`-th attempt. */
  async function server(answerFrom = 1): Promise<{ port: number; seen: () => number }> {
    const s = await open();
    let seen = 0;
    s.consume((m) => {
      seen++;
      if (seen >= answerFrom) void s.send(Buffer.from(`re:${m.data}`), m.from.port, m.from.address);
    });
    return { port: s.address().port, seen: () => seen };
  }

  it('resolves to the reply, a copy the caller keeps', async () => {
    const { port } = await server();
    const client = await open();
    const reply = await request(client, 'ping', { port, host: '127.0.0.1', timeout: 2000 });
    expect(reply.data.toString()).toBe('re:ping');
    expect(reply.from).toMatchObject({ address: '127.0.0.1', port });
    await request(client, 'again', { port, timeout: 2000 });
    expect(reply.data.toString()).toBe('re:ping');
  });

  it('sends again after each timeout, and times out with a coded error after the retries', async () => {
    const late = await server(3); // answers the third attempt
    const client = await open();
    const reply = await request(client, 'x', { port: late.port, timeout: 100, retries: 2 });
    expect(reply.data.toString()).toBe('re:x');
    expect(late.seen()).toBe(3);

    const silent = await open(); // never answers
    silent.consume(() => {});
    const t0 = performance.now();
    const err = await request(client, 'y', { port: silent.address().port, timeout: 100, retries: 2 }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'UDP_ERR_TIMEOUT', message: 'no reply within 100 ms' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(silent.packetsReceived).toBe(3);
  });

  it('fails at once when a connected peer answers ICMP port unreachable', async () => {
    const closed = await open();
    const port = closed.address().port;
    await closed.close(); // nothing listens there now
    const client = await open();
    await client.connect(port, '127.0.0.1');
    const t0 = performance.now();
    const err = await request(client, 'anyone?', { timeout: 5000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UDP_ERR_CONN_REFUSED', address: '127.0.0.1', port });
    expect((err as Error).message).toBe(`127.0.0.1:${port} refused the datagram (ICMP port unreachable)`);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('matches replies with match(), keeps many pending on one sweep, and counts strays', async () => {
    const { port } = await server();
    const client = await open();
    const requester = new Requester(client);
    const ids = Array.from({ length: 20 }, (_, i) => `id${i}`);
    const replies = await Promise.all(
      ids.map((id) =>
        requester.request(id, {
          port,
          timeout: 2000,
          match: (reply, req) => reply.data.toString() === `re:${req.toString()}`,
        }),
      ),
    );
    expect(replies.map((r) => r.data.toString())).toEqual(ids.map((id) => `re:${id}`));
    expect(requester.pending).toBe(0);
    const stray = await open();
    await stray.send('nobody asked', client.address().port);
    await new Promise((r) => setTimeout(r, 100));
    expect(requester.unmatched).toBe(1);
  });

  it('fails what is pending when the socket closes, or when the signal fires', async () => {
    const silent = await open();
    silent.consume(() => {});
    const client = await open();
    const ac = new AbortController();
    const aborted = request(client, 'a', { port: silent.address().port, timeout: 5000, signal: ac.signal });
    const closing = request(client, 'b', { port: silent.address().port, timeout: 5000 });
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'UDP_ERR_ABORTED' });
    await client.close();
    await expect(closing).rejects.toMatchObject({ code: 'UDP_ERR_CLOSED' });
    await expect(request(client, 'c', { port: 9, timeout: 100 })).rejects.toMatchObject({
      code: 'UDP_ERR_CLOSED',
    });
  });

  it('refuses bad options', async () => {
    const client = await open();
    await expect(request(client, 'x', { port: 9, timeout: 0 })).rejects.toThrow(
      'timeout 0 is not a positive',
    );
    await expect(request(client, 'x', { port: 9, retries: -1 })).rejects.toThrow('retries -1');
  });
});
