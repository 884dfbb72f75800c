/**
 * UDP GSO and GRO through the native transport: equal-size datagrams leave as one buffer and
 * arrive as one, and every datagram comes out with its own bytes, length and place, in order;
 * without them (turned off, or refused by the route) the same datagrams arrive the same way.
 * Batch consumers read the same datagrams in place.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openUdpSocket, type UdpSocket } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { createNetns } from '../helpers/netns.js';
import { until } from '../helpers/time.js';

/** Where the addon was built (CI always builds it: there, its absence fails these tests). */
const native = nativeAddon !== undefined || process.env.CI !== undefined;
const root = fileURLToPath(new URL('../..', import.meta.url));
/** The built library, for scripts run in a child process (npm test builds first). */
const LIB = fileURLToPath(new URL('../../dist/lib/index.js', import.meta.url));

async function open(options: Parameters<typeof openUdpSocket>[0] = {}): Promise<UdpSocket> {
  const s = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20, ...options });
  onTestFinished(() => s.close());
  return s;
}

/** Datagrams numbered from `first` (4 bytes, then a filler that depends on the number), packed. */
function packed(sizes: number[], first: number): { data: Buffer; lengths: Uint32Array } {
  const data = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
  let o = 0;
  sizes.forEach((size, i) => {
    data.writeUInt32BE(first + i, o);
    data.fill((first + i) % 251, o + 4, o + size);
    o += size;
  });
  return { data, lengths: Uint32Array.from(sizes) };
}

/** Sends `sizes` in batches of `batch`, each once the one before has arrived; returns what arrived. */
async function roundTrip(tx: UdpSocket, rx: UdpSocket, sizes: number[], batch = 1024) {
  const got: { seq: number; length: number; ok: boolean }[] = [];
  const done = rx.consume((m) => {
    const seq = m.data.readUInt32BE(0);
    const ok = m.data.subarray(4).every((b) => b === seq % 251);
    got.push({ seq, length: m.data.length, ok });
  });
  done.catch(() => {});
  const port = rx.address().port;
  for (let first = 0; first < sizes.length; first += batch) {
    const part = sizes.slice(first, first + batch);
    const { data, lengths } = packed(part, first);
    await tx.sendPacked(data, lengths, part.length, port, '127.0.0.1');
    await until(() => got.length >= first + part.length, 5000);
  }
  return got;
}

describe.skipIf(!native)('GSO and GRO', () => {
  it('equal-size datagrams leave as GSO buffers and arrive as GRO buffers, each split out whole and in order', async () => {
    const rx = await open({ gro: true });
    const tx = await open();
    const sizes = Array.from({ length: 5000 }, () => 1400);
    const got = await roundTrip(tx, rx, sizes);
    expect(got.map((g) => g.seq)).toEqual(sizes.map((_, i) => i));
    expect(got.every((g) => g.length === 1400 && g.ok)).toBe(true);
    const sent = tx.offloads;
    const read = rx.offloads;
    expect(sent).toMatchObject({ gso: true });
    expect(read).toMatchObject({ gro: true });
    // 1024 datagrams of 1400 B: 23 buffers of 46 (65507 B at most), not 1024 sends.
    expect(sent?.gsoSends).toBeGreaterThanOrEqual(100);
    expect(read?.groReads).toBeGreaterThan(0);
    expect(rx.packetsReceived).toBe(5000);
    expect(rx.bytesReceived).toBe(5000 * 1400);
  });

  it('sizes that change within a batch keep their boundaries: a run ends where the size changes', async () => {
    const rx = await open({ gro: true });
    const tx = await open();
    // Runs of equal sizes, single odd ones, empty datagrams, the largest, and 64 small ones in a row.
    const sizes = [
      ...[100, 100, 100, 37, 200, 200, 8, 65507, 65507, 4, 4, 1000],
      ...Array.from({ length: 64 }, () => 9),
      ...Array.from({ length: 130 }, (_, i) => 500 + (i % 3)),
    ];
    const got = await roundTrip(tx, rx, sizes, sizes.length);
    expect(got.map((g) => g.length)).toEqual(sizes);
    expect(got.map((g) => g.seq)).toEqual(sizes.map((_, i) => i));
    expect(got.every((g) => g.ok)).toBe(true);
  });

  it('gso off, or GRO not asked for: the same datagrams, one per message', async () => {
    const rx = await open();
    const tx = await open({ gso: false });
    const sizes = Array.from({ length: 3000 }, (_, i) => 64 + (i % 2));
    const got = await roundTrip(tx, rx, sizes);
    expect(got.map((g) => g.seq)).toEqual(sizes.map((_, i) => i));
    expect(tx.offloads).toMatchObject({ gso: false, gsoSends: 0 });
    expect(rx.offloads).toMatchObject({ gro: false, groReads: 0 });
  });

  it('UDPKIT_GSO=0 turns both off, as on a kernel without them; all arrives the same', () => {
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const rx = await openUdpSocket({ address: '127.0.0.1', port: 0, gro: true, recvBufferSize: 8 << 20 });
      const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
      let n = 0;
      const done = rx.consume((m) => { if (m.data.length === 1400) n++; }, { idleTimeout: 300 });
      const data = Buffer.alloc(1400 * 1000);
      await tx.sendPacked(data, new Uint32Array(1000).fill(1400), 1000, rx.address().port, '127.0.0.1');
      await done;
      console.log(JSON.stringify({ n, tx: tx.offloads, rx: rx.offloads }));
      await rx.close(); await tx.close();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, UDPKIT_GSO: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.n).toBe(1000);
    expect(out.tx).toMatchObject({ gso: false, gsoSends: 0 });
    expect(out.rx).toMatchObject({ gro: false, groReads: 0 });
  });

  it('a route that refuses GSO (segments above its MTU): verified at the first send, off, and nothing lost', (context) => {
    const ns = createNetns(context);
    // Loopback with a 1280-byte MTU: a 1400-byte GSO segment is refused (EINVAL); plain
    // datagrams of 1400 B still go, in fragments.
    const mtu = spawnSync('ip', ['-n', ns.name, 'link', 'set', 'lo', 'mtu', '1280'], { encoding: 'utf8' });
    expect(mtu.stderr).toBe('');
    const script = `
      import { openUdpSocket } from ${JSON.stringify(LIB)};
      const rx = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20 });
      const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
      const seqs = [];
      const done = rx.consume((m) => { seqs.push(m.data.readUInt32BE(0)); }, { idleTimeout: 300 });
      const data = Buffer.alloc(1400 * 200);
      for (let i = 0; i < 200; i++) data.writeUInt32BE(i, i * 1400);
      const before = tx.offloads;
      await tx.sendPacked(data, new Uint32Array(200).fill(1400), 200, rx.address().port, '127.0.0.1');
      await done;
      console.log(JSON.stringify({ seqs, before, after: tx.offloads }));
      await rx.close(); await tx.close();`;
    const r = spawnSync(...nsCommand(ns.prefix, script), { cwd: root, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.before).toMatchObject({ gso: true });
    expect(out.after).toMatchObject({ gso: false, gsoSends: 0 });
    expect(out.seqs).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});

/** The command and arguments that run `script` (an ES module) inside a namespace. */
function nsCommand(prefix: readonly string[], script: string): [string, string[]] {
  const [command, ...args] = prefix;
  return [command as string, [...args, process.execPath, '--input-type=module', '-e', script]];
}

describe('consumeBatches', () => {
  it.each(['native', 'dgram'] as const)(
    'on %s: each datagram read in place, counted, in order; batches of one from node:dgram',
    async (transport) => {
      if (transport === 'native' && !native) return;
      const rx = await open({ transport });
      const tx = await open();
      const seen: { seq: number; length: number; port: number }[] = [];
      let batches = 0;
      let largest = 0;
      const done = rx.consumeBatches((b) => {
        batches++;
        largest = Math.max(largest, b.count);
        for (let i = 0; i < b.count; i++) {
          const d = b.datagram(i);
          expect(d.data.length).toBe(b.length(i));
          expect(d.from).toBe(b.from(i));
          expect(d.receivedAt).toBe(b.receivedAt(i));
          seen.push({ seq: b.data.readUInt32BE(b.offset(i)), length: b.length(i), port: b.from(i).port });
        }
      });
      done.catch(() => {});
      const sizes = Array.from({ length: 2000 }, (_, i) => 8 + (i % 5));
      const { data, lengths } = packed(sizes, 0);
      await tx.sendPacked(data, lengths, sizes.length, rx.address().port, '127.0.0.1');
      await until(() => seen.length >= sizes.length, 5000);
      expect(seen.map((s) => s.seq)).toEqual(sizes.map((_, i) => i));
      expect(seen.map((s) => s.length)).toEqual(sizes);
      expect(new Set(seen.map((s) => s.port))).toEqual(new Set([tx.address().port]));
      expect(rx.packetsReceived).toBe(sizes.length);
      expect(rx.bytesReceived).toBe(data.length);
      if (transport === 'dgram') expect(largest).toBe(1);
      else expect(batches).toBeLessThan(sizes.length);
    },
  );

  it('with an accept filter, datagrams come one at a time and the denied are counted, not handed over', async () => {
    const tx = await open();
    const other = await open();
    const rx = await open({ accept: (from) => from.port === tx.address().port });
    let taken = 0;
    let largest = 0;
    rx.consumeBatches((b) => {
      taken += b.count;
      largest = Math.max(largest, b.count);
    }).catch(() => {});
    const { data, lengths } = packed(
      Array.from({ length: 100 }, () => 16),
      0,
    );
    await tx.sendPacked(data, lengths, 100, rx.address().port, '127.0.0.1');
    await other.sendPacked(data, lengths, 100, rx.address().port, '127.0.0.1');
    await until(() => taken + rx.denied >= 200, 5000);
    expect(taken).toBe(100);
    expect(rx.denied).toBe(100);
    expect(largest).toBe(1);
  });
});
