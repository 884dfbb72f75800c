/**
 * The worker's output ring: records come out whole and in order, through wraps, and through
 * the spill buffer when the main thread falls behind; saturation says when to stop reading.
 */
import { describe, expect, it } from 'vitest';
import { RingChannel } from '../../src/cli/workers/channel.js';
import type { WorkerMessage } from '../../src/cli/workers/protocol.js';

/** A seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function writeRecord(ch: RingChannel, record: Buffer): void {
  const buf = ch.room(record.length);
  record.copy(buf, ch.used);
  ch.used += record.length;
  ch.commit();
}

describe('RingChannel', () => {
  it('hands over every record whole and in order, through wraps and spills', () => {
    const ring = new SharedArrayBuffer(4096);
    const view = new Uint8Array(ring);
    const messages: WorkerMessage[] = [];
    const ch = new RingChannel(ring, (m) => messages.push(m));
    const random = rng(7);
    const sent: Buffer[] = [];
    const got: Buffer[] = [];
    let records = 0;
    let spills = 0;
    let wraps = 0;
    let lastStart = -1;
    // The main thread's side: copy out, then release, now and then only (it falls behind).
    const drain = () => {
      let segments = 0;
      for (const m of messages.splice(0)) {
        if (m.type === 'segment') {
          if (m.start < lastStart) wraps++;
          lastStart = m.start;
          got.push(Buffer.from(view.subarray(m.start, m.end)));
          records += m.records;
          segments++;
        } else if (m.type === 'out') {
          got.push(Buffer.from(m.data));
          records += m.records;
          spills++;
        }
      }
      ch.release(segments);
    };
    for (let i = 0; i < 5000; i++) {
      const size = 2 + Math.floor(random() * (random() < 0.05 ? 3000 : 200));
      const record = Buffer.alloc(size, i % 251);
      record.writeUInt16BE(i % 65536, 0);
      sent.push(record);
      writeRecord(ch, record);
      if (random() < 0.2) ch.flush();
      if (random() < 0.1) drain();
    }
    ch.flush();
    drain();
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
    expect(records).toBe(5000);
    expect(wraps).toBeGreaterThan(0);
    expect(spills).toBeGreaterThan(0);
  });

  it('is saturated once three quarters of the ring are out, and drains when released', () => {
    const messages: WorkerMessage[] = [];
    const ch = new RingChannel(new SharedArrayBuffer(1000), (m) => messages.push(m));
    let drained = 0;
    ch.onDrain(() => drained++);
    for (let i = 0; i < 8; i++) {
      writeRecord(ch, Buffer.alloc(100));
      ch.flush();
    }
    expect(ch.saturated).toBe(true);
    ch.release(8);
    expect(ch.saturated).toBe(false);
    expect(drained).toBe(1);
    ch.pause();
    expect(ch.saturated).toBe(true);
    ch.resume();
    expect(ch.saturated).toBe(false);
    expect(drained).toBe(2);
  });
});
