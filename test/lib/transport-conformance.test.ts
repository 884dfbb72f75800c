/**
 * One send contract on both transports: the same file runs unchanged against `native` (the
 * addon) and `dgram` (node:dgram), and each case holds on both.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import {
  ConnectionRefusedError,
  type LookupFunction,
  openUdpSocket,
  ResolveError,
  SocketClosedError,
  type TransportKind,
  UdpError,
  UdpSocket,
  type UdpSocketOptions,
} from '../../src/lib/index.js';
import { socketDropsAt } from '../../src/lib/kernel.js';
import { nativeAddon } from '../../src/lib/native.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { until } from '../helpers/time.js';

const TRANSPORTS: TransportKind[] = nativeAddon || process.env.CI ? ['dgram', 'native'] : ['dgram'];
const LIB = fileURLToPath(new URL('../../dist/lib/index.js', import.meta.url));

/** Answers names under .test from a table, and ENOTFOUND for the rest: no resolver is asked. */
const lookup: LookupFunction = (host, _options, callback) => {
  const table: Record<string, string> = { 'peer.test': '127.0.0.1' };
  const address = table[host];
  if (address) callback(null, [{ address, family: 4 }]);
  else
    callback(
      Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host }),
      [],
    );
};

/**
 * A namespace of the test's own whose loopback sends through a token bucket of 12 Mbit/s
 * (tbf): a small send buffer then fills and sendmmsg meets EAGAIN, as on a busy link.
 */
function shapedNetns(context: TestContext): Netns {
  const ns = createNetns(context);
  const shaped = spawnSync(
    ns.prefix[0] as string,
    [
      ...ns.prefix.slice(1),
      'tc',
      'qdisc',
      'replace',
      'dev',
      'lo',
      'root',
      'tbf',
      'rate',
      '12mbit',
      'burst',
      '4kb',
      'limit',
      '2mb',
    ],
    { encoding: 'utf8' },
  );
  if (shaped.status !== 0 || shaped.error) {
    throw new Error(`tc could not shape loopback: ${shaped.stderr || shaped.error?.message}`);
  }
  return ns;
}

/** Runs an ES module script in `ns`; returns the JSON it printed. */
function runIn(ns: Netns, script: string): unknown {
  const out = execFileSync(
    ns.prefix[0] as string,
    [...ns.prefix.slice(1), 'node', '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  return JSON.parse(out.trim());
}

describe.each(TRANSPORTS)('%s transport', (transport) => {
  async function open(options: UdpSocketOptions = {}): Promise<UdpSocket> {
    const socket = await openUdpSocket({ address: '127.0.0.1', port: 0, transport, lookup, ...options });
    onTestFinished(() => socket.close());
    return socket;
  }

  it('sends to a host name, resolved once per call, and says when one does not resolve', async () => {
    const server = await open();
    const client = await open();
    const port = server.address().port;
    await client.send('by name', port, 'peer.test');
    await client.sendEach(['a', 'b'], port, 'peer.test');
    const got = [await server.receive({ timeout: 2000 }), await server.receive({ timeout: 2000 })];
    got.push(await server.receive({ timeout: 2000 }));
    expect(got.map((m) => m.data.toString())).toEqual(['by name', 'a', 'b']);
    const err = await client.send('x', port, 'nowhere.test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolveError);
    expect((err as ResolveError).code).toBe('UDP_ERR_RESOLVE');
  });

  it('queues sends made while the socket binds, as node:dgram does', async () => {
    const server = await open();
    const client = new UdpSocket({ transport });
    onTestFinished(() => client.close());
    const port = server.address().port;
    await Promise.all([client.send('one', port), client.send('two', port), client.sendEach(['three'], port)]);
    const got = new Set<string>();
    for (let i = 0; i < 3; i++) got.add((await server.receive({ timeout: 2000 })).data.toString());
    expect(got).toEqual(new Set(['one', 'two', 'three']));
    expect(client.packetsSent).toBe(3);
  });

  it('a refused datagram on a connected socket is a coded, counted UdpError', async () => {
    const closed = await open();
    const port = closed.address().port;
    await closed.close();
    const client = await open();
    await client.connect(port, '127.0.0.1');
    // The ICMP report reaches the next call: a send (which then fails) or the receive path.
    let refused: unknown;
    for (let i = 0; i < 50 && refused === undefined && client.receiveErrors === 0; i++) {
      await client.send('x').catch((e: unknown) => {
        refused = e;
      });
      await new Promise((r) => setTimeout(r, 5));
    }
    if (refused !== undefined) {
      expect(refused).toBeInstanceOf(ConnectionRefusedError);
      expect(refused).toBeInstanceOf(UdpError);
      expect(refused).toMatchObject({ code: 'UDP_ERR_CONN_REFUSED', errno: 'ECONNREFUSED', port, sent: 0 });
      expect(client.sendErrors).toBeGreaterThan(0);
    } else {
      expect(client.receiveErrors).toBeGreaterThan(0);
    }
  });

  it('over the size limit, every send path names the size and the limit, and sends nothing', async () => {
    const server = await open();
    const client = await open();
    const port = server.address().port;
    const big = Buffer.alloc(65508);
    const tooLarge = { code: 'UDP_ERR_MSG_TOO_LARGE', size: 65508, limit: 65507 };
    await expect(client.send(big, port)).rejects.toMatchObject(tooLarge);
    await expect(client.sendEach(['ok', big], port)).rejects.toMatchObject(tooLarge);
    const lengths = Uint32Array.of(2, 65508);
    await expect(client.sendPacked(Buffer.alloc(65510), lengths, 2, port)).rejects.toMatchObject(tooLarge);
    await expect(
      client.sendBatch([
        { data: 'ok', port },
        { data: big, port },
      ]),
    ).rejects.toMatchObject(tooLarge);
    await expect(
      client.sendBatch([
        { data: 'ok', port },
        { data: 'x', port: 0 },
      ]),
    ).rejects.toThrow('datagram 1 of the batch: destination port 0 is out of range (1-65535)');
    expect(() => client.trySend(big, port)).toThrow(expect.objectContaining(tooLarge));
    const six = await openUdpSocket({ address: '::1', port: 0, transport });
    onTestFinished(() => six.close());
    await expect(six.send(Buffer.alloc(65528), port, '::1')).rejects.toMatchObject({
      code: 'UDP_ERR_MSG_TOO_LARGE',
      size: 65528,
      limit: 65527,
    });
    expect([client.packetsSent, client.sendErrors, six.packetsSent]).toEqual([0, 0, 0]);
    await client.send('after', port);
    expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('after');
  });

  it('close while sending settles every send: sent, or SocketClosedError', async () => {
    const server = await open();
    const client = await open();
    const port = server.address().port;
    const payloads = Array.from({ length: 2000 }, () => Buffer.alloc(1000, 0x62));
    const sending = client.sendEach(payloads, port).then(
      () => 'sent',
      (e: unknown) => e,
    );
    await client.close();
    const outcome = await sending;
    if (outcome !== 'sent') expect(outcome).toBeInstanceOf(SocketClosedError);
    await expect(client.send('late', port)).rejects.toBeInstanceOf(SocketClosedError);
  });

  it('sendBatch() sends each datagram to its own destination, names resolved once', async () => {
    const [a, b, c] = [await open(), await open(), await open()];
    const client = await open();
    await client.sendBatch([
      { data: 'to a', port: a.address().port },
      { data: 'to b', port: b.address().port, host: '127.0.0.1' },
      { data: 'to c', port: c.address().port, host: 'peer.test' },
      { data: 'a again', port: a.address().port, host: 'peer.test' },
    ]);
    expect((await a.receive({ timeout: 2000 })).data.toString()).toBe('to a');
    expect((await a.receive({ timeout: 2000 })).data.toString()).toBe('a again');
    expect((await b.receive({ timeout: 2000 })).data.toString()).toBe('to b');
    expect((await c.receive({ timeout: 2000 })).data.toString()).toBe('to c');
    expect(client.packetsSent).toBe(4);
    expect(client.bytesSent).toBe(19);
    const connected = await open();
    await connected.connect(a.address().port);
    await expect(connected.sendBatch([{ data: 'x', port: 1 }])).rejects.toMatchObject({
      code: 'UDP_ERR_INVALID_ARG',
    });
  });

  it('a batch that fails part-way names the destination that failed and counts what went', async () => {
    const server = await open();
    const client = await open();
    const port = server.address().port;
    // Without SO_BROADCAST the kernel refuses the limited broadcast address at once
    // (EACCES): nothing leaves the host.
    const failure = await client
      .sendBatch([
        { data: 'one', port },
        { data: 'two', port },
        { data: 'three', port: 9, host: '255.255.255.255' },
        { data: 'four', port },
      ])
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({
      code: 'UDP_ERR_PERMISSION_DENIED',
      address: '255.255.255.255',
      port: 9,
      sent: 2,
    });
    expect((failure as Error).message).toContain('255.255.255.255:9');
    expect([client.packetsSent, client.bytesSent, client.sendErrors]).toEqual([2, 6, 1]);
    expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('one');
    expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('two');
  });

  it('echoes lent data back to many peers in one batch, intact', async () => {
    // Buffers that hold the whole exchange: the kernel must drop nothing here.
    const roomy = { recvBufferSize: 1 << 20 };
    const server = await open(roomy);
    const clients = [await open(roomy), await open(roomy), await open(roomy)];
    const port = server.address().port;
    const total = 3 * 400;
    let seen = 0;
    const echoing = server.consume(
      (msg) => {
        // msg.data is lent: the next receive overwrites it. The reply must not care.
        void server.sendBatch([{ data: msg.data, port: msg.from.port, host: msg.from.address }]);
        return ++seen < total;
      },
      { idleTimeout: 3000 },
    );
    const sent = clients.map((_c, k) =>
      Array.from({ length: 400 }, (_, i) => `client ${k} message ${i} `.repeat(20)),
    );
    await Promise.all(clients.map((c, k) => c.sendEach(sent[k] as string[], port)));
    await echoing;
    for (const [k, c] of clients.entries()) {
      const got: string[] = [];
      while (got.length < 400) got.push((await c.receive({ timeout: 3000 })).data.toString());
      expect(new Set(got)).toEqual(new Set(sent[k]));
    }
  });

  it('trySend() sends at once or says false, never queues', async () => {
    const server = await open();
    const client = await open();
    const port = server.address().port;
    expect(client.trySend('now', port, '127.0.0.1')).toBe(true);
    expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('now');
    expect(client.packetsSent).toBe(1);
    expect(() => client.trySend('x', port, 'peer.test')).toThrow(/IP addresses, not names/);
    const unbound = new UdpSocket({ transport });
    onTestFinished(() => unbound.close());
    expect(unbound.trySend('x', port)).toBe(false);
  });

  it("counts the kernel's drops per socket, as /proc does, in a system call", async () => {
    const flooded = await open({ recvBufferSize: 16384 });
    const quiet = await open();
    const client = await open();
    expect(flooded.pause()).toBe(true);
    const payloads = Array.from({ length: 400 }, () => Buffer.alloc(1000, 7));
    await client.sendEach(payloads, flooded.address().port);
    await client.send('one', quiet.address().port);
    await quiet.receive({ timeout: 2000 });
    const drops = flooded.kernelDrops as number;
    expect(drops).toBeGreaterThan(0);
    expect(drops).toBeLessThan(400);
    const { address, port } = flooded.address();
    expect(socketDropsAt(address, port)).toBe(drops);
    expect(quiet.kernelDrops).toBe(0);
    // What was not dropped is still there to read.
    flooded.resume();
    let read = 0;
    await flooded.consume(() => void read++, { idleTimeout: 200 });
    expect(read + drops).toBe(400);
    // Cheap: a system call, not a scan of /proc (where the addon is built).
    if (nativeAddon) {
      const t0 = performance.now();
      for (let i = 0; i < 10_000; i++) void quiet.kernelDrops;
      expect(performance.now() - t0).toBeLessThan(500);
    }
  });

  it('a denied sender is counted, reaches no consumer, counts against no limit, breaks no silence', async () => {
    const server = await open({ accept: (from) => from.address !== '127.0.0.3' });
    const allowed = await openUdpSocket({ address: '127.0.0.2', port: 0, transport });
    const denied = await openUdpSocket({ address: '127.0.0.3', port: 0, transport });
    onTestFinished(() => Promise.all([allowed.close(), denied.close()]).then(() => {}));
    const port = server.address().port;
    for (let i = 1; i <= 5; i++) {
      await allowed.send(`a${i}`, port, '127.0.0.1');
      await denied.send(`d${i}`, port, '127.0.0.1');
    }
    const got: string[] = [];
    await server.consume((m) => void got.push(`${m.data}`), { limit: 5, idleTimeout: 2000 });
    expect(got).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    // Read up to the fifth allowed one: the four denied before it, not the fifth after it.
    expect([server.packetsReceived, server.denied, server.queued]).toEqual([9, 4, 0]);
    server.resume();
    await until(() => server.denied === 5);
    expect(server.queued).toBe(0);
    // A denied sender cannot keep an idle timeout from firing.
    const t0 = performance.now();
    let stop = false;
    const chatter = (async () => {
      for (let i = 0; i < 40 && !stop; i++) {
        await denied.send('noise', port, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await server.consume(() => {}, { idleTimeout: 300 });
    const waited = performance.now() - t0;
    stop = true;
    await chatter;
    expect(waited).toBeLessThan(800);
    expect(server.denied).toBeGreaterThan(6);
  });

  it('sets broadcast, hop limits and multicast loopback once bound, and checks their values', async () => {
    const unbound = new UdpSocket({ transport });
    onTestFinished(() => unbound.close());
    expect(() => unbound.setBroadcast(true)).toThrow(
      expect.objectContaining({ code: 'UDP_ERR_SOCKET_STATE' }),
    );
    for (const socket of [await open(), await openUdpSocket({ address: '::1', port: 0, transport })]) {
      onTestFinished(() => socket.close());
      socket.setBroadcast(true);
      socket.setTTL(7);
      socket.setMulticastTTL(0);
      socket.setMulticastLoopback(false);
      expect(() => socket.setTTL(0)).toThrow('hop limit 0 is not in 1-255');
      expect(() => socket.setMulticastTTL(256)).toThrow('hop limit 256 is not in 0-255');
    }
  });

  it('a thousand receiving sockets, each sent a burst, fit in well under 64 MB', () => {
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const socks = [];
      for (let i = 0; i < 1000; i++) socks.push(await openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}', recvBufferSize: 1 << 20 }));
      const tx = await openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}' });
      const payload = Buffer.alloc(8000, 1);
      const batch = socks.map((s) => ({ data: payload, port: s.address().port }));
      globalThis.gc();
      const before = process.memoryUsage().rss;
      let got = 0;
      for (const s of socks) s.consume(() => { got++; });
      for (let k = 0; k < 16; k++) await tx.sendBatch(batch);
      const deadline = Date.now() + 10000;
      while (got < 16000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      console.log(JSON.stringify({ got, grew: process.memoryUsage().rss - before }));
      process.exit(0);`;
    const out = execFileSync(
      'bash',
      ['-c', `ulimit -n 4096 && exec node --expose-gc --input-type=module -e "$0"`, script],
      { encoding: 'utf8' },
    );
    const { got, grew } = JSON.parse(out.trim()) as { got: number; grew: number };
    expect(got).toBe(16_000);
    expect(grew).toBeLessThan(64 * 1024 * 1024);
  });

  it('a full send buffer (EAGAIN) queues lent data as its own copy: echo replies stay intact', (context) => {
    // A namespace of its own whose loopback sends through a token bucket (1.5 MB/s): the
    // server's 4 KiB send buffer fills, sendmmsg meets EAGAIN and the sends wait for room
    // while the next batches overwrite the receive buffer their data was lent from.
    const ns = shapedNetns(context);
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const open = (o) => openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}', ...o });
      const server = await open({ sendBufferSize: 4096, recvBufferSize: 1 << 20 });
      const client = await open({ recvBufferSize: 1 << 21 });
      const total = 300;
      let seen = 0;
      let waited = 0;
      const echoing = server.consume((msg) => {
        void server.send(msg.data, msg.from.port, msg.from.address);
        waited = Math.max(waited, server.sendQueueCount);
        return ++seen < total;
      }, { idleTimeout: 5000 });
      const sent = Array.from({ length: total }, (_, i) => \`message \${i} \`.repeat(90).slice(0, 1000));
      await client.sendEach(sent, server.address().port);
      await echoing;
      const replies = [];
      while (replies.length < total) replies.push((await client.receive({ timeout: 5000 })).data.toString());
      const missing = sent.filter((m) => !replies.includes(m)).length;
      console.log(JSON.stringify({ seen, waited, replies: replies.length, missing }));
      process.exit(0);`;
    const result = runIn(ns, script) as { seen: number; waited: number; replies: number; missing: number };
    expect(result.seen).toBe(300);
    // The sends did wait for room: the case under test happened.
    expect(result.waited).toBeGreaterThan(10);
    expect(result.replies).toBe(300);
    expect(result.missing).toBe(0);
  });

  it('sendRecords() that meets a full send buffer sends the rest from its own copy, in order', (context) => {
    // As above, a shaped loopback with a small send buffer: the records of one chunk cannot all
    // go at once, and what arrives must still be each record, in order. The native transport
    // sends what waits from a copy of its own, so there the chunk is overwritten as soon as the
    // call returns (node:dgram reads the caller's memory until the promise settles, as the
    // contract allows).
    const ns = shapedNetns(context);
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const open = (o) => openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}', ...o });
      const server = await open({ recvBufferSize: 1 << 21 });
      const client = await open({ sendBufferSize: 4096 });
      const total = 300;
      const lines = Array.from({ length: total }, (_, i) => \`record \${i} \`.repeat(60).slice(0, 400 + (i % 3)));
      const chunk = Buffer.from(lines.map((l) => l + '\\n').join(''));
      const offsets = new Uint32Array(total);
      const lengths = new Uint32Array(total);
      let at = 0;
      lines.forEach((l, i) => { offsets[i] = at; lengths[i] = l.length; at += l.length + 1; });
      const sending = client.sendRecords(chunk, offsets, lengths, total, server.address().port);
      const waited = client.sendQueueCount;
      const spoil = () => { chunk.fill(0x21); offsets.fill(0); lengths.fill(1); };
      if ('${transport}' === 'native') spoil();
      await sending;
      spoil();
      const got = [];
      while (got.length < total) got.push((await server.receive({ timeout: 5000 })).data.toString());
      const wrong = got.filter((g, i) => g !== lines[i]).length;
      console.log(JSON.stringify({ waited, got: got.length, wrong, sent: client.packetsSent }));
      process.exit(0);`;
    const result = runIn(ns, script) as { waited: number; got: number; wrong: number; sent: number };
    // The send did wait for room: the case under test happened.
    if (transport === 'native') expect(result.waited).toBe(1);
    expect(result).toMatchObject({ got: 300, wrong: 0, sent: 300 });
  });

  it('a send waiting for room is not held up by a flood that keeps the socket coalescing', (context) => {
    // As above, a shaped loopback; the server, coalescing reads under a 5k/s flood for 2 s,
    // sends 100 KB through a 4 KiB buffer: it must go at the link's pace (~0.1 s), not wait
    // for the flood to end (1.7 s when the writable wait was dropped while coalescing).
    const ns = shapedNetns(context);
    const script = `
      import { createSequencedBatch, openUdpSocket, Pacer } from ${JSON.stringify(LIB)};
      const open = (o) => openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}', ...o });
      const server = await open({ coalesce: true, sendBufferSize: 4096, recvBufferSize: 1 << 21 });
      const flooder = await open();
      const peer = await open({ recvBufferSize: 1 << 21 });
      let received = 0;
      server.consume(() => void received++);
      const pacer = new Pacer(5000);
      const buf = createSequencedBatch(64, 64);
      const lengths = new Uint32Array(64).fill(64);
      const t0 = performance.now();
      const flood = (async () => {
        while (pacer.taken < 10000) {
          const n = await pacer.take(Math.min(64, 10000 - pacer.taken));
          await flooder.sendPacked(buf, lengths, n, server.address().port);
        }
        return performance.now() - t0;
      })();
      while (received < 1000) await new Promise((r) => setTimeout(r, 5));
      const t1 = performance.now();
      await server.sendEach(Array.from({ length: 100 }, () => Buffer.alloc(1000, 1)), peer.address().port);
      const sendMs = performance.now() - t1;
      const floodMs = await flood;
      let got = 0;
      await peer.consume(() => ++got < 100, { idleTimeout: 2000 });
      console.log(JSON.stringify({ sendMs, floodMs, got }));
      process.exit(0);`;
    const result = runIn(ns, script) as { sendMs: number; floodMs: number; got: number };
    expect(result.floodMs).toBeGreaterThan(1900);
    expect(result.sendMs).toBeLessThan(800);
    expect(result.got).toBe(100);
  });

  it('running out of file descriptors is a coded error naming EMFILE', () => {
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const kept = [];
      try {
        for (let i = 0; i < 200; i++) kept.push(await openUdpSocket({ address: '127.0.0.1', port: 0, transport: '${transport}' }));
        console.log('no error');
      } catch (err) {
        console.log(JSON.stringify({ name: err.name, code: err.code, errno: err.errno }));
      }
      process.exit(0);`;
    const out = execFileSync(
      'bash',
      ['-c', `ulimit -n 64 && exec node --input-type=module -e "$0"`, script],
      {
        encoding: 'utf8',
      },
    );
    expect(JSON.parse(out.trim())).toEqual({ name: 'SocketError', code: 'UDP_ERR_SOCKET', errno: 'EMFILE' });
  });
});
