import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { AbortError, defaultScheduler, Scheduler } from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';
import { virtualTime } from '../helpers/time.js';

describe('Scheduler', () => {
  it('runs calls in order of due time, then of scheduling, each once', async () => {
    const vt = virtualTime();
    const s = new Scheduler({ now: vt.now, timer: vt.timer });
    const ran: string[] = [];
    s.at(30, () => ran.push('c@30'));
    s.at(10, () => ran.push('a@10'));
    s.at(20, () => ran.push('b@20'));
    s.at(10, () => ran.push('a2@10'));
    await s.sleepUntil(40);
    expect(ran).toEqual(['a@10', 'a2@10', 'b@20', 'c@30']);
    expect(vt.now()).toBe(40);
    expect(s.size).toBe(0);
  });

  it('cancels a call, the first one included, and re-arms for the next', async () => {
    const vt = virtualTime();
    const s = new Scheduler({ now: vt.now, timer: vt.timer });
    const ran: number[] = [];
    const first = s.at(5, () => ran.push(5));
    s.at(7, () => ran.push(7));
    const middle = s.at(6, () => ran.push(6));
    first.cancel();
    middle.cancel();
    middle.cancel();
    await s.sleepUntil(10);
    expect(ran).toEqual([7]);
  });

  it('keeps a thousand deadlines in order', async () => {
    const vt = virtualTime();
    const s = new Scheduler({ now: vt.now, timer: vt.timer });
    const times = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
    const ran: number[] = [];
    for (const t of times) s.at(t, () => ran.push(t));
    await s.sleepUntil(1000);
    expect(ran).toEqual([...times].sort((a, b) => a - b));
  });

  it('a call that throws is reported and the others still run', async () => {
    const vt = virtualTime();
    const s = new Scheduler({ now: vt.now, timer: vt.timer });
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.prependListener('uncaughtException', onError);
    const ran: number[] = [];
    try {
      s.at(1, () => {
        throw new Error('boom');
      });
      s.at(1, () => ran.push(1));
      await s.sleepUntil(2);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(ran).toEqual([1]);
    expect(errors).toHaveLength(1);
  });

  it('sleepUntil rejects with AbortError when the signal fires, and at once when already aborted', async () => {
    const vt = virtualTime();
    const s = new Scheduler({ now: vt.now, timer: vt.timer });
    await expect(s.sleepUntil(5, AbortSignal.abort())).rejects.toBeInstanceOf(AbortError);
    const ac = new AbortController();
    const sleeping = s.sleepUntil(1e9, ac.signal);
    ac.abort();
    await expect(sleeping).rejects.toBeInstanceOf(AbortError);
    expect(s.size).toBe(0);
  });

  it('meets real deadlines without blocking the loop', async () => {
    const s = defaultScheduler();
    const late: number[] = [];
    for (let i = 0; i < 50; i++) {
      const at = s.now() + 0.3;
      await s.sleepUntil(at);
      late.push(s.now() - at);
    }
    late.sort((a, b) => a - b);
    expect(late[0]).toBeGreaterThanOrEqual(0);
    // The addon's timerfd wakes within tens of microseconds; Node's timers round to 1 ms.
    expect(late[25]).toBeLessThan(nativeAddon ? 0.5 : 2);
  });

  it('the event loop stays free while many calls wait', async () => {
    const s = defaultScheduler();
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const done: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) done.push(s.sleepUntil(s.now() + 1 + (i % 50)));
    await Promise.all(done);
    h.disable();
    expect(h.max / 1e6).toBeLessThan(50);
  });
});
