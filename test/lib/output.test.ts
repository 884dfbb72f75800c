import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
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

it('holds at most maxBuffered bytes for a stalled reader, counts the rest, and resumes', async () => {
  const s = sink({ stalled: true, highWaterMark: 1 });
  const out = new BatchWriter(s.stream, { flushBytes: 1, maxBuffered: 100 });
  const record = 'x'.repeat(10);
  out.write(record); // handed to the stream, which now stalls
  let accepted = 0;
  for (let i = 0; i < 1000; i++) if (out.write(record)) accepted++;
  expect(accepted).toBe(10);
  expect(out.buffered).toBe(100);
  expect(out.dropped).toBe(990);
  expect(out.droppedBytes).toBe(9900);
  s.resume();
  await out.flush();
  expect(out.buffered).toBe(0);
  expect(s.writes.join('')).toHaveLength(110);
  expect(out.write('again')).toBe(true);
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
  await out.flush();
  await new Promise((r) => setImmediate(r));
  expect(errors).toHaveLength(1);
  expect((out.error as NodeJS.ErrnoException).code).toBe('EPIPE');
  expect(out.write('b')).toBe(false);
});
