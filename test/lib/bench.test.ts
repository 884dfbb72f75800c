/**
 * bench end to end on loopback, through the proxy with a fixed pattern of drops, duplicates and
 * swaps: the report says exactly what was injected. Sends are bounded by count.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { runBench } from '../../src/lib/bench/client.js';
import { startBenchServer } from '../../src/lib/bench/server.js';
import { decode, encodeControl, Kind, writeDataHeader } from '../../src/lib/bench/wire.js';
import { createProxy, openUdpSocket, type Policy, type PolicyDecision } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { until } from '../helpers/time.js';

/** A proxy in front of `target` whose policy decides each datagram, closed when the test ends. */
async function proxyTo(target: { address(): { port: number } }, policy: Policy, seed?: number) {
  const proxy = await createProxy({
    target: { host: '127.0.0.1', port: target.address().port },
    policy,
    ...(seed !== undefined && { seed }),
  });
  onTestFinished(() => proxy.close());
  return proxy;
}

/** A policy for the data datagrams going up, by their index from 0 (byte 4 is the kind); the rest pass. */
function upData(decide: (i: number) => PolicyDecision): Policy {
  let i = 0;
  return ({ data, direction }) => (direction === 'up' && data[4] === Kind.Data ? decide(i++) : 'pass');
}

async function server() {
  const s = await startBenchServer({ address: '127.0.0.1' });
  onTestFinished(() => s.close());
  return s;
}

describe('bench', () => {
  it('a flood of 1400-byte datagrams in GSO buffers, read as GRO buffers: every datagram accounted for', async () => {
    const s = await server();
    const r = await runBench({
      host: '127.0.0.1',
      port: s.address().port,
      count: 100_000,
      rate: 0,
      size: 1400,
      graceMs: 200,
    });
    const f = r.receiver.figures;
    expect(r.sender).toMatchObject({ first: 0, end: 100_000, errors: 0 });
    expect(f.received + f.lost).toBe(100_000);
    expect(f).toMatchObject({ duplicates: 0, reordered: 0, unexpected: 0 });
    expect(f.bytes).toBe(f.received * 1400);
    // What the kernel dropped is lost, and nothing else: a drop is a whole GRO buffer.
    if (r.receiver.kernelDrops === 0) expect(f.lost).toBe(0);
    else expect(f.lost).toBeGreaterThan(0);
    if (nativeAddon) expect(s.offloads?.groReads).toBeGreaterThan(0);
  });

  it('through a proxy that drops, duplicates and swaps on a fixed pattern, reports exactly those counts', async () => {
    const s = await server();
    // Data datagrams only (byte 4 is the kind): every 50th dropped, every 40th (not dropped)
    // duplicated, and every 200th held 10 ms so that the next ones (about 50) overtake it.
    const proxy = await proxyTo(
      s,
      upData((i) => {
        if (i % 50 === 49) return 'drop';
        if (i % 40 === 39) return 'duplicate';
        if (i % 200 === 10) return { delay: 10 };
        return 'pass';
      }),
    );
    const r = await runBench({
      host: '127.0.0.1',
      port: proxy.address().port,
      count: 2000,
      rate: 5000,
      size: 100,
      graceMs: 200,
    });
    // 2000 sent: 40 dropped (49, 99, ...), 50 duplicated minus those also dropped (every 200th:
    // 199, 399, ...: 10), and 10 held back.
    expect(r.sender).toMatchObject({ first: 0, end: 2000, errors: 0 });
    expect(r.receiver.figures).toMatchObject({
      sent: 2000,
      lost: 40,
      duplicates: 40,
      received: 2000 - 40 + 40,
      lossRuns: { count: 40, lost: 40, max: 1 },
      unexpected: 0,
    });
    expect(r.receiver.figures.reordered).toBe(10);
    expect(r.receiver.figures.reorderExtent.max).toBeGreaterThan(10);
    expect(r.receiver.intervals.reduce((a, i) => a + i.lost, 0)).toBe(40);
    expect(r.receiver.intervals.reduce((a, i) => a + i.sent, 0)).toBe(2000);
  });

  it('gets through a path that loses 30 % of everything, control included, and reports the loss exactly', async () => {
    const s = await server();
    const lostData = { up: 0 };
    const proxy = await proxyTo(
      s,
      ({ data: bytes, direction }, { random }) => {
        if (random.next() >= 0.3) return 'pass';
        if (direction === 'up' && bytes[4] === Kind.Data) lostData.up++;
        return 'drop';
      },
      30,
    );
    const r = await runBench({
      host: '127.0.0.1',
      port: proxy.address().port,
      count: 3000,
      rate: 10_000,
      size: 64,
      graceMs: 200,
    });
    expect(r.receiver.figures.sent).toBe(3000);
    expect(r.receiver.figures.lost).toBe(lostData.up);
    expect(r.receiver.figures.received).toBe(3000 - lostData.up);
    // 30 % of 3000, within 4 standard deviations (sd = sqrt(3000 * 0.3 * 0.7) = 25).
    expect(Math.abs(lostData.up - 900)).toBeLessThan(100);
  });

  it('a report of many intervals goes in parts, and gets through 30 % loss both ways, either direction', async () => {
    for (const reverse of [false, true]) {
      const s = await server();
      const lostData = { n: 0 };
      const proxy = await proxyTo(
        s,
        ({ data: bytes }, { random }) => {
          if (random.next() >= 0.3) return 'pass';
          if (bytes[4] === Kind.Data) lostData.n++;
          return 'drop';
        },
        31,
      );
      // 100 intervals of 10 ms: a report of some 20 KB, in parts of 1200 B.
      const r = await runBench({
        host: '127.0.0.1',
        port: proxy.address().port,
        count: 2000,
        rate: 2000,
        size: 64,
        intervalMs: 10,
        graceMs: 200,
        reverse,
      });
      expect(r.receiver.intervals.length).toBeGreaterThanOrEqual(99);
      expect(r.receiver.figures).toMatchObject({ sent: 2000, lost: lostData.n, received: 2000 - lostData.n });
      expect(r.receiver.intervals.reduce((a, i) => a + i.lost, 0)).toBe(lostData.n);
    }
  });

  it('a server at its most sessions refuses the next hello and says why; a session gone frees its place', async () => {
    const s = await startBenchServer({ address: '127.0.0.1', maxSessions: 1, sessionTimeoutMs: 300 });
    onTestFinished(() => s.close());
    const raw = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => raw.close());
    const params = {
      mode: 'throughput',
      reverse: false,
      size: 64,
      rate: 100,
      count: 10,
      intervalMs: 1000,
      omitMs: 0,
      graceMs: 100,
    };
    await raw.send(
      encodeControl(0, { type: 'hello', version: 1, nonce: 'held', clock: 'c', params }),
      s.address().port,
      '127.0.0.1',
    );
    await until(() => s.sessions === 1, 2000);
    const run = { host: '127.0.0.1', port: s.address().port, count: 10, rate: 1000, size: 64, graceMs: 50 };
    await expect(runBench(run)).rejects.toThrow('refused the run: the server runs 1 sessions already');
    // The silent session is forgotten after its timeout; then a run gets in.
    await until(() => s.sessions === 0, 3000);
    expect((await runBench(run)).receiver.figures).toMatchObject({ sent: 10, received: 10 });
  });

  it('a reversed run outlasts the session timeout: a server that sends keeps its session', async () => {
    const s = await startBenchServer({ address: '127.0.0.1', sessionTimeoutMs: 300 });
    onTestFinished(() => s.close());
    const r = await runBench({
      host: '127.0.0.1',
      port: s.address().port,
      reverse: true,
      count: 1000,
      rate: 1000,
      size: 64,
      graceMs: 100,
    });
    expect(r.receiver.figures).toMatchObject({ sent: 1000, received: 1000, lost: 0 });
  });

  it("intervals line up with the sender's, however many tries the start took", async () => {
    const s = await server();
    // The first two answers to start are lost: the sender starts half a second after the server heard start.
    let started = 0;
    const proxy = await proxyTo(s, ({ data: bytes, direction }) => {
      if (
        direction === 'down' &&
        bytes[4] === Kind.Control &&
        Buffer.from(bytes).toString('utf8', 16).includes('"started"')
      )
        return ++started <= 2 ? 'drop' : 'pass';
      return 'pass';
    });
    const r = await runBench({
      host: '127.0.0.1',
      port: proxy.address().port,
      count: 1500,
      rate: 1000,
      size: 64,
      graceMs: 200,
    });
    expect(started).toBeGreaterThanOrEqual(3);
    const [first] = r.receiver.intervals;
    // Each interval's arrivals are what was sent in it, give or take a few in flight at its edges.
    expect(Math.abs((first?.received ?? 0) - (first?.sent ?? 0))).toBeLessThan(20);
  });

  it("a hostile sent message or sequence number neither stops the server nor touches a run's figures", async () => {
    const sessions: number[] = [];
    const s = await startBenchServer({
      address: '127.0.0.1',
      onEvent: (e) => {
        if (e.type === 'session') sessions.push(e.session);
      },
    });
    onTestFinished(() => s.close());
    const port = s.address().port;
    const raw = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => raw.close());
    const heard: { type: string; session?: number }[] = [];
    void raw.consume((m) => {
      const d = decode(m.data);
      if (d.kind === Kind.Control) heard.push(d.message as { type: string });
    });
    const to = (id: number, message: object) => raw.send(encodeControl(id, message), port, '127.0.0.1');
    // A session of its own, started, then told nonsense about what was sent.
    const params = {
      mode: 'throughput',
      reverse: false,
      size: 64,
      rate: 100,
      count: 10,
      intervalMs: 1000,
      omitMs: 0,
      graceMs: 100,
    };
    await to(0, { type: 'hello', version: 1, nonce: 'x', clock: 'c', params });
    await until(() => heard.some((m) => m.type === 'welcome'), 2000);
    const id = Number(heard.find((m) => m.type === 'welcome')?.session);
    await to(id, { type: 'start' });
    await until(() => heard.some((m) => m.type === 'started'), 2000);
    const before = s.garbled;
    await to(id, { type: 'sent', end: 1 });
    await to(id, { type: 'sent', first: 5, end: 1, boundaries: [5, 1] });
    await until(() => s.garbled >= before + 2, 2000);
    // A run beside it, with a datagram of its own session numbered 2^52 thrown in.
    let thrown = false;
    const r = await runBench({
      host: '127.0.0.1',
      port,
      count: 600,
      rate: 3000,
      size: 64,
      intervalMs: 50,
      graceMs: 100,
      onInterval: () => {
        const session = sessions[1];
        if (thrown || session === undefined) return;
        thrown = true;
        const d = Buffer.alloc(64);
        writeDataHeader(d, 0, Kind.Data, session, 2 ** 52, Date.now());
        void raw.send(d, port, '127.0.0.1').catch(() => {});
      },
    });
    expect(thrown).toBe(true);
    expect(r.receiver.figures).toMatchObject({
      sent: 600,
      received: 600,
      lost: 0,
      duplicates: 0,
      unexpected: 1,
    });
  });

  it('isochronous: a frame with a piece lost is missed, one held past a period is late, exactly', async () => {
    const s = await server();
    // 20 frames a second (a 50 ms period: a loaded machine's delays stay well within it) of 3000
    // bytes in pieces of 1000: data datagram i is frame i / 3.
    const proxy = await proxyTo(
      s,
      upData((i) => {
        if (i === 30 || i === 61) return 'drop'; // frames 10 and 20
        if (i === 90) return { delay: 250 }; // frame 30, five periods late
        return 'pass';
      }),
    );
    const r = await runBench({
      host: '127.0.0.1',
      port: proxy.address().port,
      isochronous: { fps: 20, bytes: 3000 },
      size: 1000,
      count: 40,
      graceMs: 200,
    });
    expect(r.sender).toMatchObject({ end: 120, frames: { first: 0, sent: 40 } });
    expect(r.receiver.figures).toMatchObject({ sent: 120, lost: 2 });
    expect(r.receiver.frames).toMatchObject({ sent: 40, complete: 38, missed: 2, late: 1, periodMs: 50 });
  });

  it('pingpong: every round trip timed, percentiles in order', async () => {
    const s = await server();
    const r = await runBench({
      host: '127.0.0.1',
      port: s.address().port,
      mode: 'pingpong',
      count: 500,
      rate: 2000,
      size: 64,
      graceMs: 200,
    });
    expect(r.rtt).toMatchObject({ sent: 500, answered: 500, lost: 0 });
    const t = r.rtt as NonNullable<typeof r.rtt>;
    expect(t.min).toBeGreaterThan(0);
    expect([t.min, t.p50, t.p90, t.p99, t.p999, t.max]).toEqual(
      [...[t.min, t.p50, t.p90, t.p99, t.p999, t.max]].sort((a, b) => a - b),
    );
  });

  it('pingpong at rate 0: one in flight, each sent once the one before came back', async () => {
    const s = await server();
    const r = await runBench({
      host: '127.0.0.1',
      port: s.address().port,
      mode: 'pingpong',
      count: 300,
      size: 64,
      graceMs: 100,
    });
    expect(r.rtt).toMatchObject({ sent: 300, answered: 300, lost: 0 });
    // One in flight: the server never saw two without an echo between (none reordered, no burst).
    expect(r.receiver.figures).toMatchObject({ sent: 300, received: 300, reordered: 0 });
  });

  it('foreign and garbled datagrams at the server are counted as such and change nothing', async () => {
    const s = await server();
    const noise = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => noise.close());
    const port = s.address().port;
    // Not the bench's, the bench's but cut short, and data of a session that does not exist.
    await noise.sendEach(
      [Buffer.from('hello'), Buffer.from([0x55, 0x4b, 0x42, 0x31, 1, 0, 0])],
      port,
      '127.0.0.1',
    );
    const stale = Buffer.alloc(64);
    stale.writeUInt32BE(0x554b4231, 0);
    stale[4] = Kind.Data;
    stale.writeUInt32BE(12345, 12);
    await noise.send(stale, port, '127.0.0.1');
    const r = await runBench({ host: '127.0.0.1', port, count: 300, rate: 3000, size: 64, graceMs: 100 });
    expect(r.receiver.figures).toMatchObject({ sent: 300, received: 300, lost: 0, duplicates: 0 });
    expect([s.foreign, s.garbled]).toEqual([2, 1]);
  });

  it('during a run, foreign, garbled and other-session datagrams are counted and the run stays exact', async () => {
    let session = -1;
    const s = await startBenchServer({
      address: '127.0.0.1',
      onEvent: (e) => {
        if (e.type === 'session') session = e.session;
      },
    });
    onTestFinished(() => s.close());
    const noise = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => noise.close());
    const port = s.address().port;
    const data = (id: number, seq: number) => {
      const d = Buffer.alloc(64);
      writeDataHeader(d, 0, Kind.Data, id, seq, Date.now());
      return d;
    };
    // At each of the sender's intervals, four datagrams beside the run: one not the bench's,
    // one of its session cut short, one of another session, and a control message that is not
    // JSON. The last two carry sequence numbers the run also uses.
    let rounds = 0;
    const r = await runBench({
      host: '127.0.0.1',
      port,
      count: 600,
      rate: 3000,
      size: 64,
      intervalMs: 50,
      graceMs: 100,
      onInterval: () => {
        rounds++;
        const bad = Buffer.from(encodeControl(session, { type: 'start' }));
        bad.write('{{{{', 16);
        void noise
          .sendEach(
            [Buffer.from('hello'), data(session, 5).subarray(0, 20), data(session + 1, 7), bad],
            port,
            '127.0.0.1',
          )
          .catch(() => {});
      },
    });
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect(r.receiver.figures).toMatchObject({
      sent: 600,
      received: 600,
      lost: 0,
      duplicates: 0,
      reordered: 0,
    });
    await until(() => s.foreign + s.garbled >= 4 * rounds, 2000);
    expect([s.foreign, s.garbled]).toEqual([2 * rounds, 2 * rounds]);
  });

  it('refuses a hello whose parameters it will not run, and says why', async () => {
    const s = await server();
    const c = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => c.close());
    const answers: unknown[] = [];
    c.consume((m) => {
      const d = decode(m.data);
      if (d.kind === Kind.Control) answers.push(d.message);
    });
    const params = {
      mode: 'throughput',
      size: 1e9,
      rate: 0,
      intervalMs: 1000,
      omitMs: 0,
      reverse: false,
      graceMs: 100,
    };
    await c.send(
      encodeControl(0, { type: 'hello', version: 1, nonce: 'a', params }),
      s.address().port,
      '127.0.0.1',
    );
    await c.send(
      encodeControl(0, { type: 'hello', version: 9, nonce: 'b', params: { ...params, size: 100 } }),
      s.address().port,
      '127.0.0.1',
    );
    await until(() => answers.length === 2);
    expect(answers).toEqual([
      { type: 'refused', nonce: 'a', reason: 'size (bytes) is not 32-65507' },
      { type: 'refused', nonce: 'b', reason: 'protocol version 9 is not 1' },
    ]);
    expect([s.sessions, s.garbled]).toEqual([0, 2]);
  });

  it('fails with a clear message when no server answers', async () => {
    const silent = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => silent.close());
    await expect(
      runBench({ host: '127.0.0.1', port: silent.address().port, count: 10, connectTimeoutMs: 600 }),
    ).rejects.toThrow(`no bench server answered at 127.0.0.1:${silent.address().port} within 600ms`);
  });
});
