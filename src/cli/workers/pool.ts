/**
 * `--workers N` for listen and echo: N worker threads, each with a socket of one SO_REUSEPORT
 * group on the same address and port, so the kernel spreads datagrams over N cores. This
 * thread owns stdout: each worker posts whole records, written here in the order they come,
 * so lines never interleave; their counters add up into one set, printed as one command's.
 */
import { BatchWriter, formatEndpoint } from '../../lib/index.js';
import { type ListenOptions, reportEnd, warnIfBufferCapped } from '../commands/listen.js';
import { type CliIO, EXIT_OK, plural, settleSignals } from '../io.js';
import { type ListenCounters, listenCounters, type ReceiverHooks, type SocketCounters } from '../receiver.js';
import { type Counters, startStats } from '../stats.js';
import { finishOutput, outputFailure, stdoutTarget } from '../stdout.js';
import { WorkerGroup } from './group.js';
import { COUNTER_SLOTS, fromSlot, RING_BYTES, type WorkerData } from './protocol.js';

/** Sums counters by name: undefined where no worker could tell. */
function sum(all: readonly Counters[], names: readonly string[]): Counters {
  const total: Counters = {};
  for (const name of names) {
    let value: number | undefined;
    for (const c of all) {
      const v = c[name];
      if (v !== undefined) value = (value ?? 0) + v;
    }
    total[name] = value;
  }
  return total;
}

/**
 * Runs listen's loop in `opts.workers` threads; resolves to the exit status. Refused without
 * the native transport: node:dgram in Node 20 cannot join a SO_REUSEPORT group.
 */
export async function runWorkers(opts: ListenOptions, io: CliIO, hooks: ReceiverHooks): Promise<number> {
  const name = `udpkit ${hooks.verb}`;
  const n = opts.workers;
  const shared = new SharedArrayBuffer(n * COUNTER_SLOTS * 8);
  const slots = new Float64Array(shared);
  const claims = opts.count === undefined ? undefined : new SharedArrayBuffer(4);
  const out = new BatchWriter(stdoutTarget());
  let paused = false;
  const { access, ...plain } = opts;
  const rings = Array.from({ length: n }, () => new SharedArrayBuffer(RING_BYTES));
  const data = (index: number): WorkerData => ({
    udpkit: 'receiver',
    index,
    workers: n,
    verb: hooks.verb,
    spec: hooks.spec,
    opts: { ...plain, access: undefined },
    rules: access?.rules,
    claims,
    counters: shared,
    ring: rings[index] as SharedArrayBuffer,
  });
  const views = rings.map((r) => new Uint8Array(r));
  const released = rings.map(() => ({ count: 0, bytes: 0 }));
  const group = new WorkerGroup(n, data, (m, member) => {
    if (m.type === 'segment' || m.type === 'out') {
      if (m.type === 'out') out.write(m.data, m.records);
      else {
        // Written straight from the worker's ring, no copy; its space goes back once written.
        // Freed space is said a quarter of the ring at a time: a message wakes the worker.
        const r = released[member.index] as { count: number; bytes: number };
        const bytes = m.end - m.start;
        out.writeShared((views[member.index] as Uint8Array).subarray(m.start, m.end), m.records, () => {
          r.count++;
          r.bytes += bytes;
          if (r.bytes >= RING_BYTES / 4) {
            member.send({ type: 'release', count: r.count });
            r.count = 0;
            r.bytes = 0;
          }
        });
      }
      if (out.saturated && !paused) {
        paused = true;
        group.broadcast({ type: 'pause' });
      }
    } else if (m.type === 'count') group.stop();
    else if (m.type === 'done') member.final = m.counters;
  });
  out.onError(() => group.stop());
  out.onDrain(() => {
    if (paused && !out.saturated) {
      paused = false;
      group.broadcast({ type: 'resume' });
    }
  });
  const stopGroup = () => group.stop();
  io.signal.addEventListener('abort', stopGroup, { once: true });
  // Every worker starts and warms up at once; they bind in turn, once ready.
  const bound = io.signal.aborted ? undefined : await group.bind(opts.port);
  const names = bound?.names ?? [];
  const granted = bound?.granted ?? 0;
  if (bound !== undefined) {
    if (opts.steer === 'cpu') group.members[0]?.send({ type: 'steer' });
    if (!opts.quiet) {
      io.stderr.write(
        `Listening on ${formatEndpoint(bound.address, bound.port)} (${n} workers${opts.steer === 'cpu' ? ', steered by CPU' : ''})\n`,
      );
    }
    warnIfBufferCapped(io, name, opts.rcvbuf, granted);
  }
  const { members } = group;
  const perWorker = () =>
    members.map((m, i) => {
      if (m.final !== undefined) return m.final;
      const c: Counters = {};
      for (const [k, key] of names.entries()) c[key] = fromSlot(slots[i * COUNTER_SLOTS + k] as number);
      return c;
    });
  const counters = (): ListenCounters => {
    const summed = sum(perWorker(), names);
    const { past_count: past, ...total } = {
      ...summed,
      received: summed.received ?? 0,
      bytes: summed.bytes ?? 0,
      drops_queue: summed.drops_queue ?? 0,
    } as SocketCounters & { past_count?: number };
    const taken = out.written + out.dropped + total.drops_queue + (total.denied ?? 0) + (past ?? 0);
    // Formatted in a worker, on its way, or held here. `received` is read at each datagram,
    // the rest a little later, so this never goes below what is truly pending.
    const pending = Math.max(0, total.received - taken);
    return listenCounters(total, { printed: out.written, pending, drops_output: out.dropped }, past);
  };
  const stopStats =
    opts.stats === undefined || bound === undefined
      ? () => {}
      : startStats(io.stderr, name, opts.stats, counters, 'received');
  const stopIdle =
    opts.idleTimeout === undefined
      ? () => {}
      : watchSilence(opts.idleTimeout, slots, n, () => paused, stopGroup);
  let abandoned = 0;
  try {
    if (bound === undefined) group.stop();
    await group.exited();
  } finally {
    stopIdle();
    abandoned = await finishOutput(out, io.signal);
    await settleSignals();
    stopStats();
    io.signal.removeEventListener('abort', stopGroup);
    if (group.failure === undefined) {
      const spread = perWorker().map((c) => c.received ?? 0);
      if (bound !== undefined) reportEnd(io, name, opts, hooks, counters(), abandoned, granted, spread);
      else
        io.stderr.write(
          `${name}: stopped before it was listening; received ${plural(counters().received, 'datagram')}\n`,
        );
    }
  }
  if (group.failure) throw group.failure;
  const outFailure = outputFailure(out.error);
  if (outFailure) throw outFailure;
  return EXIT_OK;
}

/**
 * --idle-timeout over all workers: stops them once no worker has received anything for `ms`,
 * counted from the start; time paused for a slow reader does not count.
 */
function watchSilence(
  ms: number,
  slots: Float64Array,
  n: number,
  paused: () => boolean,
  stop: () => void,
): () => void {
  const received = () => {
    let total = 0;
    for (let i = 0; i < n; i++) total += slots[i * COUNTER_SLOTS] as number;
    return total;
  };
  let last = received();
  let since = performance.now();
  const timer = setInterval(
    () => {
      const now = performance.now();
      const seen = received();
      if (seen !== last || paused()) {
        last = seen;
        since = now;
      } else if (now - since >= ms) stop();
    },
    Math.max(5, Math.min(50, ms / 10)),
  );
  return () => clearInterval(timer);
}
