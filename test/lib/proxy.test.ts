/**
 * The proxy end to end on loopback: a client, the proxy, an echo server, all in this process.
 * Every sending loop is bounded; waits are on events, with deadlines.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  createProxy,
  type DirectionStats,
  openUdpSocket,
  type ProxyEvent,
  type ProxyOptions,
  request,
  Scheduler,
  type UdpSocket,
} from '../../src/lib/index.js';
import { until, virtualTime } from '../helpers/time.js';

async function echoServer(): Promise<UdpSocket> {
  const server = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  onTestFinished(() => server.close());
  server.consume((m) => void server.send(m.data, m.from.port, m.from.address).catch(() => {}));
  return server;
}

async function proxyTo(server: UdpSocket, options: Partial<ProxyOptions> = {}) {
  const events: ProxyEvent[] = [];
  const proxy = await createProxy({
    target: { host: '127.0.0.1', port: server.address().port },
    onEvent: (e) => events.push(e),
    ...options,
  });
  onTestFinished(() => proxy.close());
  return { proxy, events };
}

async function client(): Promise<UdpSocket> {
  const c = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  onTestFinished(() => c.close());
  return c;
}

/** Every datagram received is forwarded, dropped, held, refused by the kernel or abandoned. */
function expectAddsUp(s: DirectionStats): void {
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
  expect(s.received + s.duplicated).toBe(s.forwarded + dropped + s.pending + s.sendErrors + s.abandoned);
}

describe('createProxy', () => {
  it('relays both ways, one flow per client, replies from where the client sent', async () => {
    const server = await echoServer();
    const { proxy } = await proxyTo(server);
    const [a, b] = [await client(), await client()];
    const port = proxy.address().port;
    for (const c of [a, b]) {
      const reply = await request(c, 'hi', { port, host: '127.0.0.1', timeout: 2000 });
      expect(reply.data.toString()).toBe('hi');
      expect(reply.from).toMatchObject({ address: '127.0.0.1', port });
    }
    expect(proxy.flows).toBe(2);
    expect(proxy.stats('up')).toMatchObject({ received: 2, forwarded: 2, pending: 0 });
    expect(proxy.stats('down')).toMatchObject({ received: 2, forwarded: 2 });
  });

  it('loses at the configured rate, and the event log counts what the counters count', async () => {
    const server = await echoServer();
    const { proxy, events } = await proxyTo(server, { up: { loss: { model: 'random', p: 0.2 } }, seed: 7 });
    const c = await client();
    const n = 5000;
    const port = proxy.address().port;
    // In bursts of 100, each waited for, so that no buffer overflows on the way.
    for (let i = 0; i < n; i += 100) {
      await c.sendEach(
        Array.from({ length: 100 }, (_, k) => `${i + k}`),
        port,
        '127.0.0.1',
      );
      await until(() => proxy.stats('up').received >= i + 100, 5000);
    }
    await until(() => proxy.stats('down').received === proxy.stats('up').forwarded, 5000);
    const up = proxy.stats('up');
    expect(up.received).toBe(n);
    const sd = Math.sqrt(n * 0.2 * 0.8);
    expect(Math.abs(up.dropped.loss - n * 0.2)).toBeLessThanOrEqual(3.29 * sd);
    expectAddsUp(up);
    expectAddsUp(proxy.stats('down'));
    const upEvents = events.filter((e) => e.dir === 'up');
    expect(upEvents.filter((e) => e.action === 'drop' && e.cause === 'loss').length).toBe(up.dropped.loss);
    expect(upEvents.filter((e) => e.action === 'pass').length).toBe(up.forwarded);
  });

  it('the same seed and the same input give the same decisions', async () => {
    const server = await echoServer();
    const logs: string[] = [];
    for (const seed of [5, 5, 6]) {
      const { proxy, events } = await proxyTo(server, {
        up: { loss: { model: 'gemodel', p: 0.05, r: 0.3 }, duplicate: 0.05, corrupt: 0.05 },
        down: { loss: { model: 'random', p: 0.1 } },
        seed,
      });
      const c = await client();
      // One sender over loopback: the proxy receives them in the order sent. In calls of 50,
      // each taken before the next, so that no receive buffer overflows.
      for (let i = 0; i < 300; i += 50) {
        const payloads = Array.from({ length: 50 }, (_, k) => `${i + k}`);
        await c.sendEach(payloads, proxy.address().port, '127.0.0.1');
        await until(() => proxy.stats('up').received === i + 50, 2000);
      }
      await proxy.close();
      logs.push(JSON.stringify(events.filter((e) => e.dir === 'up').map(({ t, ...rest }) => rest)));
    }
    expect(logs[0]).toBe(logs[1]);
    expect(logs[0]).not.toBe(logs[2]);
  });

  it('on a virtual clock, the same seed and input give byte-identical logs, times included', async () => {
    const server = await echoServer();
    const logs: string[] = [];
    for (const seed of [9, 9]) {
      const clock = virtualTime(1000);
      const { proxy, events } = await proxyTo(server, {
        // No delays: the virtual clock moves only when the test moves it.
        up: { loss: { model: 'gemodel', p: 0.1, r: 0.4 }, duplicate: 0.1, corrupt: 0.1 },
        seed,
        scheduler: new Scheduler({ now: clock.now, timer: clock.timer }),
      });
      const c = await client();
      for (let i = 0; i < 200; i += 50) {
        await c.sendEach(
          Array.from({ length: 50 }, (_, k) => `${i + k}`),
          proxy.address().port,
          '127.0.0.1',
        );
        await until(() => proxy.stats('up').received === i + 50, 2000);
        clock.advance(5);
      }
      await proxy.close();
      logs.push(JSON.stringify(events.filter((e) => e.dir === 'up')));
    }
    expect(logs[0]).toBe(logs[1]);
    expect(logs[0]).toContain('"t":5,');
  });

  it('--delay 20ms each way makes a round trip of about 40 ms', async () => {
    const server = await echoServer();
    const { proxy } = await proxyTo(server, { up: { delay: 20 }, down: { delay: 20 } });
    const c = await client();
    const rtts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await request(c, `${i}`, { port: proxy.address().port, host: '127.0.0.1', timeout: 2000 });
      rtts.push(performance.now() - t);
    }
    rtts.sort((x, y) => x - y);
    expect(rtts[0]).toBeGreaterThanOrEqual(40);
    expect(rtts[5]).toBeLessThan(60);
    // How long they were really held: the delay, and the loop's own wait (a little).
    expect(proxy.stats('up').delay.mean).toBeGreaterThanOrEqual(20);
    expect(proxy.stats('up').delay.mean).toBeLessThan(25);
    expect(proxy.stats('up').delayed).toBe(10);
  });

  it('bounds the flow table: a client past --max-flows is dropped and counted', async () => {
    const server = await echoServer();
    const { proxy, events } = await proxyTo(server, { maxFlows: 2 });
    const port = proxy.address().port;
    const clients = [await client(), await client(), await client()];
    for (const c of clients) await c.send('x', port, '127.0.0.1');
    await until(() => proxy.stats('up').received === 3);
    expect(proxy.flows).toBe(2);
    expect(proxy.stats('up').dropped.flows).toBe(1);
    expect(events.find((e) => e.cause === 'flows')).toMatchObject({ action: 'drop', flow: 0 });
  });

  it('forgets a flow after its idle timeout', async () => {
    const server = await echoServer();
    const { proxy } = await proxyTo(server, { flowIdleTimeout: 50 });
    const c = await client();
    await c.send('x', proxy.address().port, '127.0.0.1');
    await until(() => proxy.flows === 1);
    await until(() => proxy.flows === 0, 2000);
    expect(proxy.flowsOpened).toBe(1);
  });

  it('a policy decides instead: drop every third datagram, delay the rest by 5 ms', async () => {
    const server = await echoServer();
    const { proxy } = await proxyTo(server, {
      policy: ({ index, direction }) => (direction === 'up' && index % 3 === 2 ? 'drop' : { delay: 5 }),
    });
    const c = await client();
    for (let i = 0; i < 9; i++) await c.send(`${i}`, proxy.address().port, '127.0.0.1');
    await until(() => proxy.stats('down').forwarded === 6);
    expect(proxy.stats('up').dropped.policy).toBe(3);
    expect(proxy.stats('up').delayed).toBe(6);
  });

  it('abandons what it still holds when it closes, and says so', async () => {
    const server = await echoServer();
    const { proxy } = await proxyTo(server, { up: { delay: 10_000 } });
    const c = await client();
    await c.sendEach(['a', 'b', 'c'], proxy.address().port, '127.0.0.1');
    await until(() => proxy.stats('up').pending === 3);
    await proxy.close();
    const up = proxy.stats('up');
    expect(up).toMatchObject({ pending: 0, abandoned: 3, forwarded: 0 });
    expectAddsUp(up);
  });

  it('a burst from one client reaches the target whole and in order, sent together', async () => {
    const target = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => target.close());
    const got: string[] = [];
    target.consume((m) => void got.push(m.data.toString()));
    const { proxy } = await proxyTo(target);
    const c = await client();
    // 10 bursts of 200: each comes in as a few receive batches, each batch one send upstream.
    for (let b = 0; b < 10; b++) {
      await c.sendEach(
        Array.from({ length: 200 }, (_, k) => `${b * 200 + k}`),
        proxy.address().port,
        '127.0.0.1',
      );
      await until(() => got.length === (b + 1) * 200, 2000);
    }
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => `${i}`));
    const up = proxy.stats('up');
    expect(up).toMatchObject({ received: 2000, forwarded: 2000, pending: 0, sendErrors: 0 });
    expectAddsUp(up);
  });

  it('closed from inside a callback, what it decided after is abandoned, not lost', async () => {
    const server = await echoServer();
    let proxy: Awaited<ReturnType<typeof createProxy>> | undefined;
    let closing: Promise<void> | undefined;
    proxy = await createProxy({
      target: { host: '127.0.0.1', port: server.address().port },
      // The copy's event comes first: closing there leaves the original, decided, to be held.
      up: { duplicate: 1, delay: 50 },
      onEvent: () => {
        closing ??= proxy?.close();
      },
    });
    onTestFinished(() => proxy?.close());
    const c = await client();
    await c.send('x', proxy.address().port, '127.0.0.1');
    await until(() => closing !== undefined);
    await closing;
    const up = proxy.stats('up');
    expect(up).toMatchObject({ received: 1, duplicated: 1, forwarded: 0, pending: 0, abandoned: 2 });
    expectAddsUp(up);
  });

  it('a flow that cannot connect refuses what it is given; the next datagram tries a new flow', async () => {
    // Port 0 cannot be connected to: each flow's connect fails.
    const proxy = await createProxy({ target: { host: '127.0.0.1', port: 0 } });
    onTestFinished(() => proxy.close());
    const c = await client();
    for (let i = 1; i <= 3; i++) {
      await c.send(`${i}`, proxy.address().port, '127.0.0.1');
      await until(() => proxy.stats('up').sendErrors === i && proxy.flows === 0, 2000);
    }
    const up = proxy.stats('up');
    expect(up).toMatchObject({ received: 3, sendErrors: 3, pending: 0, forwarded: 0 });
    expect(proxy.flowsOpened).toBe(3);
    expect(proxy.idleFor()).toBeGreaterThan(0);
    expectAddsUp(up);
  });

  it("a datagram too large for the target's family is one send error; the rest of its batch goes", async () => {
    const target = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => target.close());
    const got: string[] = [];
    target.consume((m) => void got.push(m.data.toString()));
    // An IPv6 client may send 65527 bytes; an IPv4 target takes at most 65507.
    const proxy = await createProxy({
      listen: { address: '::1', port: 0 },
      target: { host: '127.0.0.1', port: target.address().port },
    });
    onTestFinished(() => proxy.close());
    const c = await openUdpSocket({ address: '::1', port: 0 });
    onTestFinished(() => c.close());
    await c.sendEach(['a', 'b', Buffer.alloc(65520), 'c', 'd'], proxy.address().port, '::1');
    await until(() => got.length === 4);
    expect(got).toEqual(['a', 'b', 'c', 'd']);
    const up = proxy.stats('up');
    expect(up).toMatchObject({ received: 5, forwarded: 4, sendErrors: 1, pending: 0 });
    expectAddsUp(up);
  });

  it('closed in the middle of a received batch, the rest of it is counted, abandoned', async () => {
    const server = await echoServer();
    let n = 0;
    let closing: Promise<void> | undefined;
    let proxy: Awaited<ReturnType<typeof createProxy>> | undefined;
    proxy = await createProxy({
      target: { host: '127.0.0.1', port: server.address().port },
      onEvent: () => {
        if (++n === 10) closing ??= proxy?.close();
      },
    });
    onTestFinished(() => proxy?.close());
    const c = await client();
    await c.sendEach(
      Array.from({ length: 60 }, (_, i) => `${i}`),
      proxy.address().port,
      '127.0.0.1',
    );
    await until(() => closing !== undefined);
    await closing;
    // A second close waits for the same: it does not return before the counts are final.
    await proxy.close();
    const up = proxy.stats('up');
    // Natively the 60 come in one batch, all read: each counted. node:dgram reads one at a time:
    // what it had not read when the socket closed was never received.
    if (c.transport === 'native') expect(up.received + up.kernelDrops).toBe(60);
    else expect(up.received).toBeGreaterThanOrEqual(10);
    expect(up.pending).toBe(0);
    expectAddsUp(up);
  });
});
