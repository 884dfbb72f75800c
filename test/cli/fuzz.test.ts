/**
 * A seeded fuzzer, short run: datagrams of every shape (0 to 65507 bytes; random bytes, valid
 * and invalid UTF-8, ANSI CSI and OSC sequences, C1 controls, bidi and zero-width characters)
 * to `listen` in text and json, and to `echo`. None may crash it or stop it serving; `text`
 * never holds a raw control byte or an unescaped invisible character; every `json` line parses
 * and gives back its payload; echo answers each with its own bytes.
 */
import { describe, expect, it } from 'vitest';
import { openUdpSocket } from '../../src/lib/index.js';
import { startListener } from '../helpers/cli.js';
import { bound } from '../helpers/net.js';
import { until } from '../helpers/time.js';

/** mulberry32: a small seeded generator, the same sequence for the same seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY = [
  '\x1b[2J\x1b[H', // clear the screen
  '\x1b]0;owned\x07', // OSC: set the terminal's title
  '\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\', // OSC 8 hyperlink
  '\u202eevil\u202c', // right-to-left override
  'zero\u200bwidth\u200d\ufeff',
  '\u2066isolate\u2069',
  '\u0085\u009b31m', // C1 controls, as characters
  'tab\there\r\nnew line',
  'back\\slash',
];

/** The next payload: its kind and size drawn from `r`. */
function payload(r: () => number): Buffer {
  const kind = Math.floor(r() * 5);
  // Mostly short, some long, now and then the largest.
  const roll = r();
  const size =
    roll < 0.01 ? 65507 - Math.floor(r() * 16) : roll < 0.05 ? Math.floor(r() * 9000) : Math.floor(r() * 300);
  if (kind === 0) {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = Math.floor(r() * 256);
    return b;
  }
  if (kind === 1) {
    // Invalid UTF-8: lone continuation bytes, cut sequences, overlongs, surrogates.
    const bad = [0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf0, 0x9f];
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = r() < 0.2 ? (bad[Math.floor(r() * bad.length)] as number) : 0x61;
    return b;
  }
  let s = '';
  while (Buffer.byteLength(s) < size) {
    s +=
      r() < 0.3
        ? (NASTY[Math.floor(r() * NASTY.length)] as string)
        : String.fromCodePoint(
            r() < 0.8 ? 0x20 + Math.floor(r() * 0x5f) : Math.floor(r() * 0x10ffff) & ~0x800,
          );
  }
  return Buffer.from(s).subarray(0, size);
}

const N = 4000;

async function sendAll(port: number, payloads: Buffer[]): Promise<void> {
  const client = await bound();
  // Paced, about 20k/s in runs of 32, so that the kernel never drops: what is checked is
  // udpkit's handling, not loopback's capacity.
  for (let i = 0; i < payloads.length; i++) {
    await client.send(payloads[i] as Buffer, port);
    if (i % 32 === 31) await new Promise((r) => setTimeout(r, 1));
  }
  await client.close();
}

describe('fuzz (short run)', () => {
  const payloads = Array.from(
    { length: N },
    (
      (r) => () =>
        payload(r)
    )(random(20261129)),
  );

  it('listen -f text: one line per datagram, no raw control byte or invisible character', async () => {
    const { running, port } = await startListener(['--count', String(N)]);
    await sendAll(port, payloads);
    const r = await running.wait(30_000);
    expect(r.code, r.stderr).toBe(0);
    const out = Buffer.from(r.stdout, 'utf8');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(N);
    expect(lines.filter((line) => !line.startsWith('Received message: '))).toEqual([]);
    // No C0 control but the newlines that end lines, no DEL.
    const raw = out.findIndex((byte) => byte !== 0x0a && (byte < 0x20 || byte === 0x7f));
    expect(raw, raw < 0 ? '' : `raw byte ${out[raw]} at ${raw}`).toBe(-1);
    // No C1 control, bidi, zero-width or BOM character left raw.
    expect(r.stdout).not.toMatch(/[\u0080-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u);
  }, 60_000);

  it('listen -f json: every line parses and gives back its payload, in order', async () => {
    const { running, port } = await startListener(['--count', String(N), '--format', 'json']);
    await sendAll(port, payloads);
    const r = await running.wait(30_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(N);
    const wrong = lines.findIndex((line, i) => {
      const record = JSON.parse(line) as { size: number; base64: string; text?: string };
      const sent = payloads[i] as Buffer;
      return (
        record.size !== sent.length ||
        !Buffer.from(record.base64, 'base64').equals(sent) ||
        (record.text !== undefined && !Buffer.from(record.text).equals(sent))
      );
    });
    expect(wrong, `line ${wrong}`).toBe(-1);
  }, 60_000);

  it('echo: answers each with its own bytes and keeps serving', async () => {
    const { running, port } = await startListener(['--format', 'raw'], '127.0.0.1', 'echo', {
      readStdout: true,
    });
    // A receive buffer for the largest answers too.
    const client = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 8 << 20 });
    const answers: Buffer[] = [];
    client.consume((msg) => {
      answers.push(Buffer.from(msg.data));
    });
    for (let i = 0; i < payloads.length; i++) {
      await client.send(payloads[i] as Buffer, port);
      if (i % 32 === 31) await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => answers.length === N, 10_000);
    expect(answers.findIndex((a, i) => !a.equals(payloads[i] as Buffer))).toBe(-1);
    expect(running.child.exitCode).toBeNull(); // still serving
    await client.close();
  }, 60_000);
});
