import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { inputChunks } from '../../src/cli/input.js';
import { AbortError, InputError } from '../../src/lib/index.js';

const dir = mkdtempSync(join(tmpdir(), 'udpkit-input-'));
const never = new AbortController().signal;
const noStdin = Readable.from([]);

/** Every chunk's bytes, copied as they come (a reused chunk is valid only until the next). */
async function collect(file: string, options: { reuse: boolean; chunkSize?: number }, signal = never) {
  const chunks: Buffer[] = [];
  for await (const chunk of inputChunks(file, noStdin, signal, options)) chunks.push(Buffer.from(chunk));
  return chunks;
}

describe('inputChunks', () => {
  const content = Buffer.from(Array.from({ length: 1000 }, (_, i) => `${i}\n`).join(''));
  const file = join(dir, 'numbers.txt');
  writeFileSync(file, content);

  it.each([true, false])(
    'reads a file whole, in chunks of the size asked, in order (reuse %s)',
    async (reuse) => {
      const chunks = await collect(file, { reuse, chunkSize: 7 });
      expect(Buffer.concat(chunks)).toEqual(content);
      expect(chunks.slice(0, -1).every((c) => c.length === 7)).toBe(true);
    },
  );

  it('keeps each chunk intact while the next is read ahead into the other buffer', async () => {
    const seen: string[] = [];
    for await (const chunk of inputChunks(file, noStdin, never, { reuse: true, chunkSize: 64 })) {
      const before = chunk.toString();
      // The next read is already under way: give it time to land, then look again.
      await new Promise((r) => setTimeout(r, 2));
      expect(chunk.toString()).toBe(before);
      seen.push(before);
    }
    expect(seen.join('')).toBe(content.toString());
  });

  it('reads stdin when the file is - or not given', async () => {
    const chunks: Buffer[] = [];
    for await (const c of inputChunks('-', Readable.from([Buffer.from('a\n'), Buffer.from('b')]), never, {
      reuse: true,
    }))
      chunks.push(c);
    expect(Buffer.concat(chunks).toString()).toBe('a\nb');
  });

  it.each([
    [join(dir, 'missing.txt'), 'no such file'],
    [dir, 'it is a directory'],
  ])('a file that cannot be read is an InputError naming it (%s)', async (path, why) => {
    const err = await collect(path, { reuse: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: 'UDP_ERR_INPUT', message: `cannot read '${path}': ${why}` });
  });

  it('stops with AbortError when the signal fires, and at once when it had', async () => {
    const controller = new AbortController();
    const chunks = inputChunks(file, noStdin, controller.signal, { reuse: true, chunkSize: 16 });
    expect((await chunks.next()).done).toBe(false);
    controller.abort();
    await expect(chunks.next()).rejects.toBeInstanceOf(AbortError);
    await expect(collect(file, { reuse: true }, controller.signal)).rejects.toBeInstanceOf(AbortError);
  });
});
