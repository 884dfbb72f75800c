/**
 * `udpkit send --file`: records framed in place in large chunks read ahead, sent many per call.
 * What a user sees must not depend on where the chunks were cut: every record, in order, as it
 * was (CR of a CRLF dropped, empty lines as empty datagrams), on both transports, with GSO and
 * without.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FILE_CHUNK } from '../../src/cli/input.js';
import { openUdpSocket, type UdpSocket } from '../../src/lib/index.js';
import { runCli } from '../helpers/cli.js';

function tempFile(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'udpkit-test-'));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/**
 * A receiver whose buffer holds a whole unpaced run (as root, past rmem_max), so that loopback
 * drops nothing; and whether it got that much (elsewhere the sender is paced instead).
 */
/**
 * The pace for a receiver that cannot take an unpaced run. node:dgram's (one callback a
 * datagram, its buffer capped at rmem_max) lost 1-25 % at 50k/s while other test files ran
 * beside it on 2 cores.
 */
const PACE = process.env.UDPKIT_NATIVE === '0' ? '20k' : '50k';

async function receiver(): Promise<{ socket: UdpSocket; roomy: boolean }> {
  const want = 256 << 20;
  const socket = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: want });
  onTestFinished(() => socket.close());
  return { socket, roomy: socket.recvBufferSize >= want };
}

/**
 * Takes datagrams until `expected.length` arrived or 2 s of silence, comparing each in place
 * with the record expected at its position; returns how many came and the first that differed.
 */
async function receiveInOrder(
  socket: UdpSocket,
  expected: readonly Buffer[],
): Promise<{ received: number; firstWrong: number | undefined }> {
  let received = 0;
  let firstWrong: number | undefined;
  if (expected.length === 0) return { received, firstWrong };
  await socket.consume(
    (msg) => {
      if (firstWrong === undefined && !msg.data.equals(expected[received] as Buffer)) firstWrong = received;
      return ++received < expected.length;
    },
    { idleTimeout: 2000, signal: AbortSignal.timeout(60_000) },
  );
  return { received, firstWrong };
}

/** The datagrams a file of `lines` (each with its own ending) makes, with line framing. */
function datagramsOf(lines: readonly string[]): Buffer[] {
  return lines.map((l) => Buffer.from(l.replace(/\r?\n$/, ''), 'latin1'));
}

describe('udpkit send --file: records straddling chunks', () => {
  /**
   * Three chunks and a bit: a CRLF cut between its \r (the first chunk's last byte) and its \n,
   * an empty line starting the second chunk, a record of the largest size (65507 bytes)
   * straddling the next boundary, and an unterminated last line.
   */
  function straddlingLines(): string[] {
    const lines: string[] = [];
    let size = 0;
    const add = (line: string) => {
      lines.push(line);
      size += line.length;
    };
    const filler = (until: number) => {
      for (let i = 0; size + 100 <= until; i++) add(`${lines.length}:${'f'.repeat(90 + (i % 7))}\n`);
    };
    filler(FILE_CHUNK - 200);
    add(`${'c'.repeat(FILE_CHUNK - 1 - size)}\r\n`);
    expect(size).toBe(FILE_CHUNK + 1);
    add('\n');
    filler(2 * FILE_CHUNK - 30_000);
    add(`${'m'.repeat(65507)}\r\n`);
    filler(3 * FILE_CHUNK + 5000);
    add('crlf\r\n');
    add('last, unterminated');
    return lines;
  }

  it('sends each record as it was, in order, and reports each as it did', async () => {
    const { socket, roomy } = await receiver();
    const port = socket.address().port;
    const lines = straddlingLines();
    const file = tempFile('straddle.txt', lines.join(''));
    const expected = datagramsOf(lines);
    const receiving = receiveInOrder(socket, expected);
    const r = await runCli(
      ['send', '127.0.0.1', String(port), '--file', file, ...(roomy ? [] : ['--rate', PACE])],
      {
        ms: 60_000,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const reported = r.stdout.split('\n');
    expect(reported.length).toBe(expected.length + 1);
    expect(reported.slice(0, -1)).toEqual(
      expected.map((d) => `Sent message: ${d.toString('latin1')} to 127.0.0.1:${port}`),
    );
    expect(await receiving).toEqual({ received: expected.length, firstWrong: undefined });
    expect(expected.some((d) => d.length === 65507)).toBe(true);
  });

  it('one byte over the largest size, straddling a boundary, is an error after the records before it', async () => {
    const { socket, roomy } = await receiver();
    const before = Array.from(
      { length: Math.floor((FILE_CHUNK - 11) / 100) },
      (_, i) => `${String(i).padStart(99, '.')}\n`,
    );
    const size = before.join('').length;
    const lines = [...before, `${'o'.repeat(FILE_CHUNK - 11 - size)}\n`];
    // The long record begins 11 bytes before the first chunk ends.
    const file = tempFile('over.txt', `${lines.join('')}${'z'.repeat(65508)}\nnever\n`);
    const expected = datagramsOf(lines);
    const receiving = receiveInOrder(socket, expected);
    const r = await runCli(
      [
        'send',
        '-q',
        '127.0.0.1',
        String(socket.address().port),
        '--file',
        file,
        // Unpaced only into a roomy native receiver: node:dgram's (the run on it) cannot take ~1M/s.
        ...(roomy && process.env.UDPKIT_NATIVE !== '0' ? [] : ['--rate', PACE]),
      ],
      { ms: 30_000 },
    );
    expect(r.stderr).toBe(
      `udpkit send: message ${lines.length + 1} (line ${lines.length + 1}) is over the 65507-byte limit (65508 bytes so far)\n`,
    );
    expect(r.code).toBe(1);
    expect(await receiving).toEqual({ received: expected.length, firstWrong: undefined });
    await expect(socket.receive({ timeout: 200 })).rejects.toMatchObject({ code: 'UDP_ERR_TIMEOUT' });
  });
});

describe.each([
  ['the native transport', {}],
  ['node:dgram (UDPKIT_NATIVE=0)', { UDPKIT_NATIVE: '0' }],
  ['GSO off (UDPKIT_GSO=0)', { UDPKIT_GSO: '0' }],
])('udpkit send -q --file, 100k lines, %s', (_name, env: Record<string, string>) => {
  it('every line arrives, in order, as it was', async () => {
    const { socket, roomy } = await receiver();
    // Lines of 8 to 60 bytes, some CRLF, some empty: runs of equal size for GSO, and not.
    const lines = Array.from({ length: 100_000 }, (_, i) => {
      if (i % 997 === 0) return '\n';
      const line = `${i}:${'y'.repeat((i * 7) % 53)}`;
      return i % 11 === 0 ? `${line}\r\n` : `${line}\n`;
    });
    const file = tempFile('lines.txt', lines.join(''));
    const expected = datagramsOf(lines);
    const receiving = receiveInOrder(socket, expected);
    const r = await runCli(
      [
        'send',
        '-q',
        '--stats-interval',
        '1h',
        '127.0.0.1',
        String(socket.address().port),
        '--file',
        file,
        // Unpaced only into a roomy native receiver: node:dgram's (the run on it) cannot take ~1M/s.
        ...(roomy && process.env.UDPKIT_NATIVE !== '0' ? [] : ['--rate', PACE]),
      ],
      { ms: 60_000, env },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const bytes = expected.reduce((n, d) => n + d.length, 0);
    expect(r.stderr).toMatch(
      new RegExp(
        `^udpkit send: sent=100000 bytes=${bytes} refused=0 errors=0 elapsed=\\d+\\.\\d+s pps=\\d+\\n$`,
      ),
    );
    expect(await receiving).toEqual({ received: 100_000, firstWrong: undefined });
  });
});

describe('udpkit send --file --rate', () => {
  it('paces records framed in place exactly: all sent, none early', async () => {
    const { socket } = await receiver();
    const lines = Array.from({ length: 200 }, (_, i) => `paced ${i}\n`);
    const file = tempFile('paced.txt', lines.join(''));
    const first: number[] = [];
    let last = 0;
    let received = 0;
    const receiving = socket.consume(
      (msg) => {
        if (received === 0) first.push(msg.receivedAt);
        last = msg.receivedAt;
        return ++received < 200;
      },
      { idleTimeout: 2000, signal: AbortSignal.timeout(20_000) },
    );
    const r = await runCli([
      'send',
      '-q',
      '127.0.0.1',
      String(socket.address().port),
      '--file',
      file,
      '--rate',
      '2000',
    ]);
    expect(r.code).toBe(0);
    await receiving;
    expect(received).toBe(200);
    // 200 at 2000/s: the last is due 99.5 ms after the pacer started. The first leaves a little
    // after that start (the socket binds on the first send), so allow it a few milliseconds.
    expect(last - (first[0] as number)).toBeGreaterThanOrEqual(95);
  });
});
