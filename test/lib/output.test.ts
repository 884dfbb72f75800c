import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { expect, it, onTestFinished, vi } from 'vitest';
import { BatchWriter } from '../../src/lib/index.js';

/** A writable that records each write() call and can be stalled. */
function sink(options: { stalled?: boolean; highWaterMark?: number } = {}) {
  const writes: string[] = [];
  let release: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: options.highWaterMark ?? 16,
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString());
      if (options.stalled) release = cb;
      else cb();
    },
  });
  return {
    stream,
    writes,
    resume: () => {
      options.stalled = false;
      release?.();
    },
  };
}

it('batches records written in one turn into one write', async () => {
  const { stream, writes } = sink();
  const out = new BatchWriter(stream);
  for (let i = 0; i < 100; i++) out.write(`line ${i}\n`);
  await out.flush();
  expect(writes).toHaveLength(1);
  expect(writes[0]?.split('\n')).toHaveLength(101);
});

it('writes as soon as a batch reaches flushBytes', () => {
  const { stream, writes } = sink({ highWaterMark: 1 << 20 });
  const out = new BatchWriter(stream, { flushBytes: 10 });
  out.write('12345');
  expect(writes).toHaveLength(0);
  out.write('67890');
  expect(writes).toEqual(['1234567890']);
});

it('mixes bytes and strings in order', async () => {
  const { stream, writes } = sink();
  const out = new BatchWriter(stream);
  out.write('a');
  out.write(Buffer.from('b'));
  out.write('c');
  await out.flush();
  expect(writes).toEqual(['abc']);
});

it('is saturated at maxBuffered, keeps accepting to hardLimit, counts the rest, and resumes', async () => {
  const s = sink({ stalled: true, highWaterMark: 1 });
  const out = new BatchWriter(s.stream, { flushBytes: 1, maxBuffered: 100, hardLimit: 200 });
  const record = 'x'.repeat(10);
  out.write(record); // handed to the stream, which now stalls
  expect(out.saturated).toBe(false);
  let accepted = 0;
  for (let i = 0; i < 1000; i++) if (out.write(record)) accepted++;
  expect(out.saturated).toBe(true);
  expect(accepted).toBe(20);
  expect(out.buffered).toBe(200);
  expect(out.dropped).toBe(980);
  expect(out.droppedBytes).toBe(9800);
  expect(out.written).toBe(0);
  expect(out.pending).toBe(21);
  expect(out.written + out.pending + out.dropped).toBe(1001);
  s.resume();
  expect(await out.flush()).toBe(true);
  expect(out.buffered).toBe(0);
  expect(out.written).toBe(21);
  expect(out.pending).toBe(0);
  expect(s.writes.join('')).toHaveLength(210);
  expect(out.write('again')).toBe(true);
});

it('counts a record written only once the destination has taken it', async () => {
  const s = sink({ stalled: true, highWaterMark: 1 });
  const out = new BatchWriter(s.stream, { flushBytes: 1 });
  out.write('one\n');
  expect(out.written).toBe(0);
  expect(out.pending).toBe(1);
  s.resume();
  expect(await out.flush()).toBe(true);
  expect(out.written).toBe(1);
});

it('waits for a slow reader as long as it takes, unless a signal stops the wait', async () => {
  const s = sink({ stalled: true, highWaterMark: 1 });
  const out = new BatchWriter(s.stream, { flushBytes: 1 });
  out.write('a');
  out.write('b');
  let settled = false;
  const waiting = out.flush().then((ok) => {
    settled = true;
    return ok;
  });
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  expect(settled).toBe(false);
  s.resume();
  expect(await waiting).toBe(true);
  expect(out.written).toBe(2);

  const stalled = sink({ stalled: true, highWaterMark: 1 });
  const held = new BatchWriter(stalled.stream, { flushBytes: 1 });
  held.write('c');
  held.write('d');
  const stop = new AbortController();
  const cut = held.flush({ signal: stop.signal });
  stop.abort();
  expect(await cut).toBe(false);
  expect(held.pending).toBe(2);
  expect(held.abandon()).toBe(2);
  expect(held.dropped).toBe(2);
  expect(held.pending).toBe(0);
  expect(held.write('e')).toBe(false);
  expect(held.written + held.pending + held.dropped).toBe(3);
});

it('writes to a file descriptor and counts what it wrote', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-out-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'out.txt'), 'w');
  onTestFinished(() => closeSync(fd));
  const out = new BatchWriter(fd, { flushBytes: 1024 });
  for (let i = 0; i < 5000; i++) out.write(`line ${i}\n`);
  expect(await out.flush()).toBe(true);
  expect(out.written).toBe(5000);
  expect(out.dropped).toBe(0);
  expect(readFileSync(join(dir, 'out.txt'), 'utf8').split('\n')).toHaveLength(5001);
});

it('a full disk fails the writer with ENOSPC and counts every record as dropped', async () => {
  const fd = openSync('/dev/full', 'w');
  onTestFinished(() => closeSync(fd));
  const out = new BatchWriter(fd);
  for (let i = 0; i < 10; i++) out.write('x\n');
  expect(await out.flush()).toBe(false);
  expect((out.error as NodeJS.ErrnoException).code).toBe('ENOSPC');
  expect(out.written).toBe(0);
  expect(out.dropped).toBe(10);
  expect(out.pending).toBe(0);
});

it('stops on a stream error and reports it once', async () => {
  const stream = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const out = new BatchWriter(stream);
  const errors: Error[] = [];
  out.onError((e) => errors.push(e));
  out.write('a');
  expect(await out.flush()).toBe(false);
  await new Promise((r) => setImmediate(r));
  expect(errors).toHaveLength(1);
  expect(out.dropped).toBe(1);
  expect((out.error as NodeJS.ErrnoException).code).toBe('EPIPE');
  expect(out.write('b')).toBe(false);
});

it('reserve makes chunks ahead, bounded by maxBuffered, and the records written after come out whole and in order', async () => {
  const { stream, writes } = sink({ highWaterMark: 1 << 20 });
  const out = new BatchWriter(stream, { maxBuffered: 1 << 20 });
  const before = process.memoryUsage().arrayBuffers;
  out.reserve(64 << 20);
  const grown = process.memoryUsage().arrayBuffers - before;
  expect(grown).toBeGreaterThanOrEqual(512 << 10); // it made chunks...
  expect(grown).toBeLessThanOrEqual((1 << 20) + (256 << 10)); // ...no more than maxBuffered allows
  const line = `${'x'.repeat(1000)}\n`;
  for (let i = 0; i < 5000; i++) out.write(`${i} ${line}`);
  await out.flush();
  const lines = writes.join('').split('\n');
  expect(lines).toHaveLength(5001);
  expect(lines.slice(0, 5000).every((l, i) => l === `${i} ${line.slice(0, -1)}`)).toBe(true);
  expect(out.written).toBe(5000);
});

it('fills to its limit again and again without new chunks: those of the first time are reused, and a flush goes on in the same chunk', async () => {
  let release: (() => void) | undefined;
  const chunks: Buffer[] = [];
  const stream = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      release = cb;
    },
  });
  const out = new BatchWriter(stream, { maxBuffered: 2 << 20 });
  const alloc = vi.spyOn(Buffer, 'allocUnsafe');
  onTestFinished(() => alloc.mockRestore());
  const line = Buffer.alloc(1000, 0x61);
  line[999] = 0x0a;
  const perCycle: number[] = [];
  let n = 0;
  for (let cycle = 0; cycle < 5; cycle++) {
    // Chunks alone (anything else in the process may take small buffers meanwhile).
    const chunksMade = () => alloc.mock.calls.filter(([size]) => size >= 256 * 1024).length;
    const before = chunksMade();
    while (!out.saturated) {
      out.write(line);
      n++;
      if (n % 50 === 0) await new Promise((r) => setImmediate(r)); // flushes in between
    }
    // The reader takes it all.
    while (out.pending > 0) {
      const r = release;
      release = undefined;
      r?.();
      await new Promise((r) => setImmediate(r));
    }
    perCycle.push(chunksMade() - before);
  }
  expect(perCycle[0]).toBeGreaterThan(0);
  expect(perCycle.slice(1)).toEqual([0, 0, 0, 0]);
  expect(Buffer.concat(chunks).length).toBe(n * 1000);
  expect(out.written).toBe(n);
});

it('writes a regular file on the calling thread: the bytes are in the file as the batch is handed over, whole and in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-sync-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'out'), 'w');
  onTestFinished(() => closeSync(fd));
  const out = new BatchWriter(fd);
  const line = `${'y'.repeat(99)}\n`;
  for (let i = 0; i < 1000; i++) out.write(line); // 100 KB: past flushBytes, handed over at once
  // No await: a write on the thread pool would not have landed yet.
  expect(readFileSync(join(dir, 'out')).length).toBeGreaterThanOrEqual(64 * 1024);
  expect(out.written).toBeGreaterThan(0);
  await out.flush();
  expect(readFileSync(join(dir, 'out'), 'utf8')).toBe(line.repeat(1000));
  expect(out.written).toBe(1000);
});

it('a failed write on the calling thread is an error, and what it held is counted as dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-sync-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'ro'), 'w+');
  closeSync(fd);
  const ro = openSync(join(dir, 'ro'), 'r');
  onTestFinished(() => closeSync(ro));
  const out = new BatchWriter(ro, { sync: true });
  let failed: Error | undefined;
  out.onError((err) => (failed = err));
  for (let i = 0; i < 10; i++) out.write('z\n');
  expect(await out.flush()).toBe(false);
  expect((failed as NodeJS.ErrnoException | undefined)?.code).toBe('EBADF');
  expect(out.written + out.dropped).toBe(10);
  expect(out.dropped).toBe(10);
});

it('writeShared queues bytes without copying them, in order with copied records, and says when they may be reused', async () => {
  const { stream, writes } = sink({ highWaterMark: 1 << 20 });
  const out = new BatchWriter(stream);
  const shared = Buffer.from('b1\nb2\n');
  let released = 0;
  out.write('a\n');
  out.writeShared(shared, 2, () => released++);
  out.write('c\n');
  expect(released).toBe(0);
  await out.flush();
  expect(writes.join('')).toBe('a\nb1\nb2\nc\n');
  expect(released).toBe(1);
  expect(out.written).toBe(4);
  // Past the hard limit: dropped, counted, and handed back at once.
  const full = new BatchWriter(sink({ stalled: true, highWaterMark: 1 }).stream, {
    maxBuffered: 4,
    hardLimit: 4,
  });
  expect(full.writeShared(shared, 2, () => released++)).toBe(false);
  expect(released).toBe(2);
  expect(full.dropped).toBe(2);
});
