/**
 * The bench's real-time clock against the kernel's: a datagram's receive time (SO_TIMESTAMPNS,
 * CLOCK_REALTIME) must fall between the clock's readings before the send and after the
 * receipt. An offset read off by a preemption (200-250 µs) puts it outside: round trips timed
 * against the clock were inflated by that much.
 */
import { describe, expect, it } from 'vitest';
import { RealtimeClock } from '../../src/lib/bench/clock.js';
import { openUdpSocket } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';

const native = nativeAddon || (process.env.CI && process.env.UDPKIT_NATIVE !== '0') ? it : it.skip;

describe('RealtimeClock', () => {
  it('is read in a narrow interval, soon', () => {
    const started = performance.now();
    const clock = new RealtimeClock();
    expect(performance.now() - started).toBeLessThan(100);
    expect(clock.uncertainty).toBeLessThan(0.5);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(2);
  });

  native('agrees with the kernel’s receive times to within its uncertainty', async () => {
    const socket = await openUdpSocket({ address: '127.0.0.1', port: 0, transport: 'native' });
    try {
      const { port } = socket.address();
      const clock = new RealtimeClock();
      // A microsecond of rounding either way: the kernel's time reaches JavaScript in µs.
      const slack = clock.uncertainty + 0.002;
      for (let i = 0; i < 20; i++) {
        const before = clock.now();
        await socket.send(`t${i}`, port, '127.0.0.1');
        const m = await socket.receive({ timeout: 2000 });
        const after = clock.now();
        expect(m.receivedAt).toBeGreaterThanOrEqual(before - slack);
        expect(m.receivedAt).toBeLessThanOrEqual(after + slack);
      }
    } finally {
      await socket.close();
    }
  });
});
