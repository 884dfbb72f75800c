import { describe, expect, it, onTestFinished } from 'vitest';
import {
  AbortError,
  AddressInUseError,
  type Datagram,
  InvalidArgumentError,
  type LookupFunction,
  MessageTooLargeError,
  openUdpSocket,
  SocketClosedError,
  SocketStateError,
  TimeoutError,
  type TransportKind,
  UdpSocket,
  type UdpSocketOptions,
} from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { until } from '../helpers/time.js';

// Both transports must behave the same. The native one is required in CI, where it is built.
const TRANSPORTS: TransportKind[] = nativeAddon || process.env.CI ? ['dgram', 'native'] : ['dgram'];

describe.each(TRANSPORTS)('%s transport', (transport) => {
  /** A socket bound to port 0 on `address`, closed when the test ends. */
  async function open(address = '127.0.0.1', options: UdpSocketOptions = {}): Promise<UdpSocket> {
    const socket = await openUdpSocket({ address, port: 0, transport, ...options });
    onTestFinished(() => socket.close());
    return socket;
  }

  describe.each([
    ['IPv4', '127.0.0.1'],
    ['IPv6', '::1'],
  ] as const)('%s on loopback', (family, loopback) => {
    it('binds port 0 and reads the port back', async () => {
      const socket = await open(loopback);
      const addr = socket.address();
      expect(addr.address).toBe(loopback);
      expect(addr.family).toBe(family);
      expect(addr.port).toBeGreaterThan(0);
      expect(socket.state).toBe('bound');
      expect(socket.type).toBe(family === 'IPv6' ? 'udp6' : 'udp4');
    });

    it('sends and receives through for await, with sender and time', async () => {
      const server = await open(loopback);
      const client = await open(loopback);
      const before = Date.now();
      for (const m of ['one', 'two', '']) await client.send(m, server.address().port, loopback);
      const got: Datagram[] = [];
      for await (const msg of server) {
        got.push(msg);
        if (got.length === 3) break;
      }
      expect(got.map((m) => m.data.toString())).toEqual(['one', 'two', '']);
      expect(got[0]?.from).toMatchObject({ address: loopback, port: client.address().port, family });
      expect(got[0]?.receivedAt).toBeGreaterThanOrEqual(before - 1);
      expect(got[0]?.receivedAt).toBeLessThanOrEqual(Date.now() + 1);
      expect(client.packetsSent).toBe(3);
      expect(client.bytesSent).toBe(6);
      expect(server.packetsReceived).toBe(3);
      expect(server.bytesReceived).toBe(6);
      // Leaving the loop does not close the socket.
      expect(server.state).toBe('bound');
    });

    it(`carries the largest ${family} datagram whole, and refuses one byte more`, async () => {
      const limit = family === 'IPv6' ? 65527 : 65507;
      const server = await open(loopback);
      const client = await open(loopback);
      const big = Buffer.alloc(limit, 0x61);
      big[limit - 1] = 0x7a;
      await client.send(big, server.address().port, loopback);
      const msg = await server.receive({ timeout: 2000 });
      expect(msg.data.length).toBe(limit);
      expect(msg.data[limit - 1]).toBe(0x7a);
      const err = await client
        .send(Buffer.alloc(limit + 1), server.address().port, loopback)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MessageTooLargeError);
      expect(err).toMatchObject({
        code: 'UDP_ERR_MSG_TOO_LARGE',
        size: limit + 1,
        limit,
        message: `message of ${limit + 1} bytes is over the ${limit}-byte limit of UDP over ${family}`,
      });
      expect(client.packetsSent).toBe(1);
    });

    it('connects to one peer and sends without a destination', async () => {
      const server = await open(loopback);
      const client = await open(loopback);
      const peer = await client.connect(server.address().port, loopback);
      expect(peer).toEqual({ address: loopback, port: server.address().port, family });
      expect(client.remoteAddress()).toEqual(peer);
      await client.send('hi');
      expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('hi');
      await expect(client.send('x', 1, loopback)).rejects.toThrow(
        'a connected socket sends only to its peer',
      );
    });
  });

  describe('UdpSocket', () => {
    it('reports EADDRINUSE as AddressInUseError and closes the failed socket', async () => {
      const first = await open();
      const second = new UdpSocket({ transport });
      const err = await second
        .bind({ address: '127.0.0.1', port: first.address().port })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AddressInUseError);
      expect(err).toMatchObject({
        code: 'UDP_ERR_ADDR_IN_USE',
        errno: 'EADDRINUSE',
        port: first.address().port,
        message: `address 127.0.0.1:${first.address().port} is already in use`,
      });
      await second.close();
      expect(second.state).toBe('closed');
    });

    it('validates arguments before any I/O', async () => {
      expect(() => new UdpSocket({ transport, type: 'udp5' as 'udp4' })).toThrow(InvalidArgumentError);
      expect(() => new UdpSocket({ transport, highWaterMark: 0 })).toThrow(
        'highWaterMark 0 is not a positive integer',
      );
      const socket = new UdpSocket({ transport });
      onTestFinished(() => socket.close());
      await expect(socket.bind({ port: 70000 })).rejects.toThrow('port 70000 is out of range (0-65535)');
      expect(socket.state).toBe('unbound');
      await expect(socket.send('x', 0)).rejects.toThrow('destination port 0 is out of range (1-65535)');
      await expect(socket.send('x')).rejects.toThrow('send needs a destination port');
      await expect(socket.send('x', 9, '::1')).rejects.toThrow(
        'cannot send to IPv6 address ::1 from a udp4 socket',
      );
      await expect(socket.send(42 as unknown as string, 9)).rejects.toThrow(
        'data must be a Uint8Array or a string',
      );
      expect(socket.state).toBe('unbound');
      expect(() => socket.address()).toThrow(SocketStateError);
    });

    it('binds implicitly on the first send', async () => {
      const server = await open();
      const client = new UdpSocket({ transport });
      onTestFinished(() => client.close());
      await client.send('auto', server.address().port);
      expect(client.state).toBe('bound');
      const msg = await server.receive({ timeout: 2000 });
      expect(msg.from.port).toBe(client.address().port);
    });

    it('refuses to bind twice', async () => {
      const socket = await open();
      await expect(socket.bind()).rejects.toThrow(SocketStateError);
    });

    it('drops and counts datagrams when the consumer stalls, holding at most highWaterMark', async () => {
      const server = await open('127.0.0.1', { highWaterMark: 8 });
      const client = await open();
      const total = 50;
      for (let i = 0; i < total; i++) await client.send(`m${i}`, server.address().port);
      await until(() => server.packetsReceived === total);
      expect(server.queued).toBe(8);
      expect(server.droppedByQueue).toBe(total - 8);
      // The oldest are kept, in order; the consumer then sees them and new ones.
      const kept: string[] = [];
      for (let i = 0; i < 8; i++) kept.push((await server.receive()).data.toString());
      expect(kept).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
      await client.send('after', server.address().port);
      expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('after');
      expect(server.droppedByQueue).toBe(total - 8);
    });

    it('batches() yields everything queued in one array', async () => {
      const server = await open();
      const client = await open();
      for (let i = 0; i < 20; i++) await client.send(`b${i}`, server.address().port);
      await until(() => server.queued === 20);
      const batch = (await server.batches().next()).value as Datagram[];
      expect(batch.map((m) => m.data.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `b${i}`));
      expect(server.queued).toBe(0);
    });

    it('sendPacked() sends packed datagrams in order', async () => {
      const server = await open('127.0.0.1', { highWaterMark: 4096 });
      const client = await open();
      const count = 300;
      const parts = Array.from({ length: count }, (_, i) => Buffer.from(`msg-${i}-${'x'.repeat(i % 7)}`));
      const lengths = Uint32Array.from(parts.map((p) => p.length));
      await client.sendPacked(
        Buffer.concat([...parts, Buffer.alloc(0)]),
        lengths,
        count,
        server.address().port,
      );
      expect(client.packetsSent).toBe(count);
      expect(client.bytesSent).toBe(lengths.reduce((a, b) => a + b, 0));
      await until(() => server.packetsReceived + (server.kernelDrops ?? 0) === count);
      const got: string[] = [];
      while (server.queued > 0) got.push((await server.receive()).data.toString());
      // Loopback may drop under a burst, but never reorders or alters.
      expect(got.length).toBeGreaterThan(0);
      const indexes = got.map((g) => Number(g.split('-')[1]));
      expect([...indexes].sort((a, b) => a - b)).toEqual(indexes);
      for (const g of got) expect(parts[Number(g.split('-')[1])]?.toString()).toBe(g);
      await expect(client.sendPacked(Buffer.alloc(4), Uint32Array.of(8), 1, 9)).rejects.toThrow(
        'the lengths add up to 8, past the 4 bytes of data',
      );
    });

    it('sendRecords() sends records where they lie in one buffer, in order, equal-size runs too', async () => {
      const server = await open('127.0.0.1', { highWaterMark: 4096 });
      const client = await open();
      // Lines as a file holds them: delimiters between the records, an empty one, runs of equal size.
      const lines = [
        'a',
        'bb',
        '',
        ...Array.from({ length: 70 }, (_, i) => `same-${String(i).padStart(3, '0')}`),
        'end',
      ];
      const text = Buffer.from(lines.map((l) => `${l}\n`).join(''));
      const offsets = new Uint32Array(100);
      const lengths = new Uint32Array(100);
      let at = 0;
      for (const [i, l] of lines.entries()) {
        offsets[i] = at;
        lengths[i] = l.length;
        at += l.length + 1;
      }
      await client.sendRecords(text, offsets, lengths, lines.length, server.address().port);
      expect(client.packetsSent).toBe(lines.length);
      expect(client.bytesSent).toBe(text.length - lines.length);
      const got: string[] = [];
      while (got.length < lines.length) got.push((await server.receive({ timeout: 2000 })).data.toString());
      expect(got).toEqual(lines);
      await expect(
        client.sendRecords(text, Uint32Array.of(text.length - 1), Uint32Array.of(2), 1, 9),
      ).rejects.toThrow(
        new InvalidArgumentError(
          `record 0 ends at byte ${text.length + 1}, past the ${text.length} bytes of data`,
        ),
      );
      await expect(client.sendRecords(text, offsets, lengths, 101, 9)).rejects.toThrow(
        'count 101 is not in 0-100',
      );
      await expect(
        client.sendRecords(Buffer.alloc(70000), Uint32Array.of(0), Uint32Array.of(65508), 1, 9),
      ).rejects.toMatchObject({ code: 'UDP_ERR_MSG_TOO_LARGE', size: 65508 });
      expect(client.packetsSent).toBe(lines.length);
    });

    it('sendEach() sends separate payloads in order, with sendmmsg where there is one', async () => {
      const server = await open('127.0.0.1', { highWaterMark: 4096 });
      const client = await open();
      await client.sendEach(['a', Buffer.from('bb'), '', 'dddd'], server.address().port);
      expect(client.packetsSent).toBe(4);
      expect(client.bytesSent).toBe(7);
      const got: string[] = [];
      for (let i = 0; i < 4; i++) got.push((await server.receive({ timeout: 2000 })).data.toString());
      expect(got).toEqual(['a', 'bb', '', 'dddd']);
      await expect(client.sendEach([Buffer.alloc(70000)], 9)).rejects.toMatchObject({
        code: 'UDP_ERR_MSG_TOO_LARGE',
      });
    });

    it('consume() hands over each datagram as it comes, queued ones first, until the handler says stop', async () => {
      const server = await open();
      const client = await open();
      await client.send('queued', server.address().port);
      await until(() => server.queued === 1);
      const seen: string[] = [];
      const done = server.consume((msg) => {
        seen.push(msg.data.toString()); // a copy: the bytes are only lent
        return seen.length < 4;
      });
      await client.sendEach(['one', 'two', 'three', 'four'], server.address().port);
      await done;
      expect(seen).toEqual(['queued', 'one', 'two', 'three']);
      // The fourth was not taken by the consumer: it waits in the queue for the next reader.
      expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('four');
    });

    it('consume() ends on idle timeout, on close, on abort, and with the error its handler threw', async () => {
      const server = await open();
      const client = await open();
      await expect(server.consume(() => true, { idleTimeout: 30 })).resolves.toBeUndefined();
      const ac = new AbortController();
      const aborted = server.consume(() => true, { signal: ac.signal });
      await expect(server.consume(() => true)).rejects.toBeInstanceOf(SocketStateError);
      ac.abort();
      await expect(aborted).rejects.toBeInstanceOf(AbortError);
      const failing = server.consume(() => {
        throw new Error('handler failed');
      });
      await client.send('x', server.address().port);
      await expect(failing).rejects.toThrow('handler failed');
      const closing = server.consume(() => true);
      await server.close();
      await expect(closing).resolves.toBeUndefined();
    });

    it('consume() rejects with what an async handler rejected with, never an unhandled rejection', async () => {
      const server = await open();
      const client = await open();
      const done = server.consume(async () => {
        throw new Error('async handler failed');
      });
      await client.send('x', server.address().port);
      await expect(done).rejects.toThrow('async handler failed');
    });

    it('simulateReceive() runs made-up datagrams through the receive path, with no traffic', async () => {
      const socket = await open();
      const seen: string[] = [];
      const done = socket.consume((msg) => {
        seen.push(`${msg.data.toString()} from ${msg.from.address}:${msg.from.port}`);
        return seen.length < 3;
      });
      socket.simulateReceive([Buffer.from('a'), Buffer.from('bc'), Buffer.from('')]);
      await done;
      expect(seen).toEqual(['a from 127.0.0.1:1', 'bc from 127.0.0.1:1', ' from 127.0.0.1:1']);
      expect(socket.packetsReceived).toBe(3);
    });

    it('consume({ limit }) takes exactly limit datagrams and leaves the rest in the kernel', async () => {
      const server = await open();
      const client = await open();
      const seen: string[] = [];
      const done = server.consume(
        (msg) => {
          seen.push(msg.data.toString());
        },
        { limit: 3 },
      );
      await client.sendEach(['a', 'b', 'c', 'd', 'e'], server.address().port);
      await done;
      expect(seen).toEqual(['a', 'b', 'c']);
      // Nothing more is read, however long we look: the rest wait in the kernel.
      await new Promise((r) => setTimeout(r, 100));
      expect(server.packetsReceived).toBe(3);
      expect(server.queued).toBe(0);
      server.resume();
      expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('d');
      expect((await server.receive({ timeout: 2000 })).data.toString()).toBe('e');
    });

    it('pause() stops reading and idle timeouts with it; resume() reads on and loses nothing', async () => {
      const server = await open();
      const client = await open();
      const port = server.address().port;
      const seen: string[] = [];
      let ended = false;
      const done = server
        .consume(
          (msg) => {
            seen.push(msg.data.toString());
            // The first datagram pauses reception from inside the handler.
            if (seen.length === 1) expect(server.pause()).toBe(true);
          },
          { idleTimeout: 50 },
        )
        .then(() => {
          ended = true;
        });
      await client.send('first', port);
      await until(() => seen.length === 1);
      await client.sendEach(['2', '3', '4', '5'], port);
      // Paused for four times the idle timeout: not silence, and nothing more read.
      await new Promise((r) => setTimeout(r, 200));
      expect(ended).toBe(false);
      expect(seen).toEqual(['first']);
      server.resume();
      await done;
      expect(seen).toEqual(['first', '2', '3', '4', '5']);
      expect(server.packetsReceived).toBe(5);
    });

    it('counts what the kernel dropped when the receive buffer overflowed', async () => {
      const server = await open('127.0.0.1', { recvBufferSize: 4096 });
      const client = await open();
      const count = 500;
      // All sent within one turn of the event loop, so the receiver cannot read in between.
      await client.sendPacked(
        Buffer.alloc(64 * count),
        new Uint32Array(count).fill(64),
        count,
        server.address().port,
      );
      await until(() => server.packetsReceived + (server.kernelDrops ?? 0) === count);
      expect(server.kernelDrops).toBeGreaterThan(0);
      expect(server.transport).toBe(transport);
    });

    it('receive() times out with TimeoutError', async () => {
      const socket = await open();
      const err = await socket.receive({ timeout: 30 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ code: 'UDP_ERR_TIMEOUT', message: 'no datagram received within 30 ms' });
    });

    it('messages() ends after idleTimeout of silence', async () => {
      const socket = await open();
      const started = performance.now();
      const got: Datagram[] = [];
      for await (const msg of socket.messages({ idleTimeout: 50 })) got.push(msg);
      expect(got).toEqual([]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    });

    it('messages() throws AbortError when the signal fires, and at once when already aborted', async () => {
      const socket = await open();
      const ac = new AbortController();
      const loop = (async () => {
        for await (const _ of socket.messages({ signal: ac.signal })) {
          // nothing arrives
        }
      })();
      ac.abort();
      await expect(loop).rejects.toBeInstanceOf(AbortError);
      await expect(socket.messages({ signal: AbortSignal.abort() }).next()).rejects.toMatchObject({
        code: 'UDP_ERR_ABORTED',
      });
      await expect(socket.receive({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
    });

    it('close() is idempotent, ends iteration after draining the queue, and refuses later sends', async () => {
      const server = await open();
      const client = await open();
      await client.send('queued', server.address().port);
      await until(() => server.queued === 1);
      const p1 = server.close();
      const p2 = server.close();
      expect(p1).toBe(p2);
      await p1;
      expect(server.state).toBe('closed');
      const got: string[] = [];
      for await (const msg of server) got.push(msg.data.toString());
      expect(got).toEqual(['queued']);
      await expect(server.send('x', 9)).rejects.toBeInstanceOf(SocketClosedError);
      await expect(server.receive()).rejects.toMatchObject({ code: 'UDP_ERR_CLOSED' });
    });

    it('close() wakes a waiting consumer', async () => {
      const socket = await open();
      const pending = socket.receive();
      const iteration = socket.messages().next();
      await socket.close();
      await expect(pending).rejects.toBeInstanceOf(SocketClosedError);
      await expect(iteration).resolves.toEqual({ done: true, value: undefined });
    });

    it('works with await using', async () => {
      let escaped: UdpSocket | undefined;
      {
        await using socket = await openUdpSocket({ address: '127.0.0.1', port: 0, transport });
        escaped = socket;
        expect(socket.state).toBe('bound');
      }
      expect(escaped.state).toBe('closed');
    });

    it('reports the receive buffer the kernel granted', async () => {
      const socket = await open('127.0.0.1', { recvBufferSize: 65536 });
      expect(socket.recvBufferSize).toBeGreaterThanOrEqual(65536);
    });

    it('opens a udp6 socket for a name that resolves to IPv6 only when asked', async () => {
      // Names resolve through an injected lookup: no test asks the machine's resolver.
      const lookup: LookupFunction = (_host, _options, callback) =>
        callback(null, [{ address: '127.0.0.1', family: 4 }]);
      const socket = await open('localhost', { lookup });
      expect(socket.type).toBe('udp4');
      const v6 = await open('::', { type: 'udp6' });
      expect(v6.address().family).toBe('IPv6');
    });
  });

  describe('where datagrams arrived (metadata)', () => {
    it('says to, interface and ttl on the native transport; neither field nor promise on dgram', async () => {
      const server = await open('0.0.0.0', { metadata: true });
      expect(server.metadata).toBe(transport === 'native');
      const client = await open();
      await client.send('hi', server.address().port, '127.0.0.3');
      const msg = await server.receive({ timeout: 2000 });
      if (transport === 'native') {
        expect(msg).toMatchObject({ to: '127.0.0.3', interface: 'lo', ttl: 64 });
      } else {
        expect(Object.keys(msg)).toEqual(['data', 'from', 'receivedAt']);
      }
      // Not asked: nothing, on either transport.
      const plain = await open('0.0.0.0');
      expect(plain.metadata).toBe(false);
      await client.send('hi', plain.address().port, '127.0.0.3');
      expect(Object.keys(await plain.receive({ timeout: 2000 }))).toEqual(['data', 'from', 'receivedAt']);
    });

    it.each([
      ['udp4', '0.0.0.0', '127.0.0.1', '127.0.0.4', '127.0.0.4'],
      ['udp6', '::', '::1', '::ffff:127.0.0.4', '::ffff:127.0.0.4'],
    ] as const)(
      '%s: reply() answers from the address a datagram was sent to',
      async (type, any, lo, dst, shown) => {
        const server = await open(any, { type, metadata: true });
        const client = await open(type === 'udp4' ? lo : '::', { type });
        await client.send('ask', server.address().port, dst);
        const ask = await server.receive({ timeout: 2000 });
        await server.reply(ask, 'answer');
        const answer = await client.receive({ timeout: 2000 });
        expect(answer.data.toString()).toBe('answer');
        expect(answer.from.port).toBe(server.address().port);
        // node:dgram cannot choose: the routing table picks the loopback's first address.
        expect(answer.from.address).toBe(
          transport === 'native' ? shown : type === 'udp4' ? '127.0.0.1' : '::ffff:127.0.0.1',
        );
        expect([server.packetsSent, server.bytesSent, server.sendErrors]).toEqual([1, 6, 0]);
      },
    );

    it('reply() on a connected socket answers its peer', async () => {
      const server = await open('127.0.0.1', { metadata: true });
      const client = await open();
      await server.connect(client.address().port, '127.0.0.1');
      await client.send('ask', server.address().port, '127.0.0.1');
      await server.reply(await server.receive({ timeout: 2000 }), 'answer');
      expect((await client.receive({ timeout: 2000 })).data.toString()).toBe('answer');
    });

    it('interface ties the socket to one (SO_BINDTODEVICE), or says it needs the native transport', async () => {
      if (transport === 'dgram') {
        await expect(
          openUdpSocket({ address: '0.0.0.0', port: 0, transport, interface: 'lo' }),
        ).rejects.toThrow(
          expect.objectContaining({ code: 'UDP_ERR_NOT_SUPPORTED', message: expect.stringContaining('lo') }),
        );
        return;
      }
      const tied = await open('0.0.0.0', { interface: 'lo' });
      const client = await open();
      await client.send('via lo', tied.address().port, '127.0.0.1');
      expect((await tied.receive({ timeout: 2000 })).data.toString()).toBe('via lo');
      await expect(openUdpSocket({ port: 0, transport, interface: 'no-such-if0' })).rejects.toThrow(
        expect.objectContaining({ code: 'UDP_ERR_INVALID_ARG' }),
      );
    });
  });
});
