/**
 * The receive thread (native/ring.c): a thread reads the socket into a bounded ring and the
 * loop takes batches from it. Everything it reads arrives once, in order, whole, across the
 * ring's wraps and its filling up; a stalled loop no longer overflows the kernel's buffer;
 * pause, read limits and a close inside a batch behave as without it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openUdpSocket, type UdpSocket } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { until } from '../helpers/time.js';

const native = nativeAddon !== undefined || process.env.CI !== undefined;
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

async function open(options: Parameters<typeof openUdpSocket>[0] = {}): Promise<UdpSocket> {
  const s = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20, ...options });
  onTestFinished(() => s.close());
  return s;
}

/** `count` datagrams of `size` bytes numbered from `first`, packed (4-byte number, then its low byte). */
function numbered(count: number, size: number, first = 0) {
  const data = Buffer.alloc(count * size);
  for (let i = 0; i < count; i++) {
    data.writeUInt32BE(first + i, i * size);
    data.fill((first + i) & 0xff, i * size + 4, (i + 1) * size);
  }
  return { data, lengths: new Uint32Array(count).fill(size) };
}

/** Checks each datagram is the next number, whole; returns how many were right. */
function checker() {
  let next = 0;
  let bad = 0;
  return {
    take(data: Buffer): void {
      const n = data.readUInt32BE(0);
      if (n !== next || data.subarray(4).some((b) => b !== (n & 0xff))) bad++;
      next = n + 1;
    },
    get next() {
      return next;
    },
    get bad() {
      return bad;
    },
  };
}

/** Sends `count` datagrams of `size` bytes at `rate` a second from another process (the CLI). */
function sendFromAnotherProcess(port: number, count: number, size: number, rate: number): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'send',
      '127.0.0.1',
      String(port),
      '--count',
      String(count),
      '--size',
      String(size),
      '--rate',
      String(rate),
    ],
    {
      stdio: 'ignore',
    },
  );
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
}

describe.skipIf(!native)('receive thread', () => {
  it('many times round the ring, full now and then: every datagram once, in order, whole', async () => {
    const rx = await open({ receiveThread: true });
    const tx = await open();
    const c = checker();
    let seen = 0;
    rx.consume((m) => {
      c.take(m.data);
      // Now and then the loop is busy for 30 ms: the ring fills, the thread waits for room.
      if (++seen % 4000 === 0) {
        const until30 = performance.now() + 30;
        while (performance.now() < until30);
      }
    }).catch(() => {});
    const total = 24_000; // 24 MB of 1000-byte datagrams: three times round the 8 MB ring
    for (let first = 0; first < total; first += 2000) {
      const { data, lengths } = numbered(2000, 1000, first);
      await tx.sendPacked(data, lengths, 2000, rx.address().port, '127.0.0.1');
      await until(() => seen >= first + 2000 - 4000, 5000);
    }
    await until(() => seen === total, 5000);
    expect(c.bad).toBe(0);
    expect(rx.kernelDrops).toBe(0);
    expect(rx.packetsReceived).toBe(total);
    expect(rx.receiveRing?.held).toBe(0);
  });

  it('a loop that stalls 100 ms every 20000 datagrams, with a small kernel buffer: nothing dropped', async () => {
    // 1 MB of kernel buffer holds a few thousand datagrams: tens of ms at 100k/s, less than a
    // stall (without the thread, thousands are dropped). The ring holds the rest.
    const rx = await open({ receiveThread: true, recvBufferSize: 1 << 20 });
    let seen = 0;
    rx.consume(() => {
      if (++seen % 20_000 === 0) {
        const t = performance.now() + 100;
        while (performance.now() < t);
      }
    }).catch(() => {});
    expect(await sendFromAnotherProcess(rx.address().port, 60_000, 200, 100_000)).toBe(0);
    await until(() => seen + (rx.kernelDrops ?? 0) >= 60_000, 5000);
    expect(rx.kernelDrops).toBe(0);
    expect(seen).toBe(60_000);
  });

  it('paused, the thread reads no more; resumed, the rest arrives; a read limit stops it at the limit', async () => {
    const rx = await open({ receiveThread: true });
    const tx = await open();
    const got: number[] = [];
    await (async () => {
      const { data, lengths } = numbered(100, 64);
      await tx.sendPacked(data, lengths, 100, rx.address().port, '127.0.0.1');
    })();
    await rx.consume((m) => void got.push(m.data.readUInt32BE(0)), { limit: 10, idleTimeout: 2000 });
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => i));
    // The rest, read or not, all arrive once, in order.
    rx.resume();
    const rest = rx.consume((m) => void got.push(m.data.readUInt32BE(0)));
    rest.catch(() => {});
    await until(() => got.length === 100, 5000);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(rx.packetsReceived).toBe(100);
    expect(rx.queued + rx.droppedByQueue).toBe(0);
    // Paused: nothing more is taken from the kernel.
    expect(rx.pause()).toBe(true);
    const more = numbered(50, 64, 100);
    await tx.sendPacked(more.data, more.lengths, 50, rx.address().port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
    expect(rx.packetsReceived).toBe(100);
    rx.resume();
    await until(() => got.length === 150, 5000);
    expect(got.slice(100)).toEqual(Array.from({ length: 50 }, (_, i) => 100 + i));
  });

  it('GRO buffers split by the thread: each datagram whole, in order', async () => {
    const rx = await open({ receiveThread: true, gro: true });
    const tx = await open();
    const c = checker();
    let seen = 0;
    rx.consume((m) => {
      c.take(m.data);
      seen++;
    }).catch(() => {});
    for (let first = 0; first < 10_000; first += 1000) {
      const { data, lengths } = numbered(1000, 1400, first);
      await tx.sendPacked(data, lengths, 1000, rx.address().port, '127.0.0.1');
      await until(() => seen >= first + 1000, 5000);
    }
    expect(c.bad).toBe(0);
    expect(rx.offloads?.groReads).toBeGreaterThan(0);
  });

  it('closed from inside a batch with more in the ring: no crash, and what was read is counted', async () => {
    const rx = await openUdpSocket({
      address: '127.0.0.1',
      port: 0,
      receiveThread: true,
      recvBufferSize: 8 << 20,
    });
    const tx = await open();
    let closing: Promise<void> | undefined;
    let handed = 0;
    const done = rx.consume(() => {
      handed++;
      closing ??= rx.close();
    });
    const { data, lengths } = numbered(5000, 100);
    await tx.sendPacked(data, lengths, 5000, rx.address().port, '127.0.0.1');
    await done.catch(() => {});
    await until(() => closing !== undefined, 5000);
    await closing;
    // Everything the thread read reached the socket: handed over, or queued after the close.
    expect(rx.packetsReceived).toBeGreaterThanOrEqual(handed);
    expect(rx.packetsReceived).toBe(handed + rx.queued + rx.droppedByQueue);
  });
});

describe.skipIf(!native)('receive thread: a close inside a batch', () => {
  it('closing another socket inside a batch hands its rest over there and then, and the batch being read keeps its own rows', async () => {
    const a = await open({ receiveThread: true });
    const b = await open({ receiveThread: true });
    const tx = await open();
    const c = checker();
    let depth = 0;
    let deepest = 0;
    let handedOver = 0;
    let aBad = 0;
    let closing: Promise<void> | undefined;
    b.consumeBatches((batch) => {
      depth++;
      deepest = Math.max(deepest, depth);
      for (let i = 0; i < batch.count; i++)
        c.take(batch.data.subarray(batch.offset(i), batch.offset(i) + batch.length(i)));
      handedOver += batch.count;
      depth--;
    });
    const done = new Promise<void>((resolve) => {
      a.consumeBatches((batch) => {
        depth++;
        if (closing === undefined) {
          // b's thread reads 3000 datagrams into its ring while this callback runs, so b's
          // close below has them to hand over, inside this batch.
          const { data, lengths } = numbered(3000, 37);
          void tx.sendPacked(data, lengths, 3000, b.address().port, '127.0.0.1');
          const deadline = Date.now() + 5000;
          while ((b.receiveRing?.held ?? 0) < 3000 && Date.now() < deadline) {}
          closing = b.close();
        }
        for (let i = 0; i < batch.count; i++) if (batch.length(i) !== 100) aBad++;
        depth--;
        resolve();
      });
    });
    const { data, lengths } = numbered(200, 100);
    await tx.sendPacked(data, lengths, 200, a.address().port, '127.0.0.1');
    await done;
    await closing;
    expect(deepest).toBe(2); // b's batches were delivered inside a's
    expect(handedOver).toBe(3000);
    expect(c.bad).toBe(0);
    expect(aBad).toBe(0);
  });
});

describe.skipIf(!native)('sockets in worker threads', () => {
  it.each(['unread', 'reading', 'receive thread'])(
    'a worker ending with a socket left open (%s) ends cleanly: the process lives on',
    (mode) => {
      const LIB = fileURLToPath(new URL('../../dist/lib/index.js', import.meta.url));
      const worker = `
        const { openUdpSocket } = await import(${JSON.stringify(LIB)});
        const s = await openUdpSocket({ address: '127.0.0.1', port: 0, receiveThread: ${mode === 'receive thread'} });
        if (${mode !== 'unread'}) s.consume(() => {});
        (await import('node:worker_threads')).parentPort.postMessage('ready');`;
      const main = `
        import { Worker } from 'node:worker_threads';
        const w = new Worker(${JSON.stringify(worker)}, { eval: true, type: 'module' });
        w.on('message', () => setTimeout(() => w.terminate(), 50));
        w.on('exit', () => setTimeout(() => console.log('alive'), 50));`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', main], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('alive\n');
    },
  );
});
