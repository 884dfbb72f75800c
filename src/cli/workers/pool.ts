/**
 * `--workers N` for listen and echo: N worker threads, each with a socket of one SO_REUSEPORT
 * group on the same address and port, so the kernel spreads datagrams over N cores. This
 * thread owns stdout: each worker posts whole records, written here in the order they come,
 * so lines never interleave; their counters add up into one set, printed as one command's.
 */
import { Worker } from 'node:worker_threads';
import {
  BatchWriter,
  formatEndpoint,
  NotSupportedError,
  nativeUnavailableReason,
  UdpError,
  type UdpErrorCode,
} from '../../lib/index.js';
import { type ListenOptions, reportEnd, warnIfBufferCapped } from '../commands/listen.js';
import { type CliIO, EXIT_OK, settleSignals } from '../io.js';
import { type ListenCounters, listenCounters, type ReceiverHooks, type SocketCounters } from '../receiver.js';
import { type Counters, startStats } from '../stats.js';
import { finishOutput, outputFailure, stdoutTarget } from '../stdout.js';
import {
  COUNTER_SLOTS,
  fromSlot,
  type MainMessage,
  type WorkerData,
  type WorkerMessage,
} from './protocol.js';

/** The module a worker thread starts from: the command line's entry (see main.ts). */
let entry: URL | undefined;

/** Says which module starts workers: main.ts, which runs a worker when it is started as one. */
export function setWorkerEntry(url: string): void {
  entry = new URL(url);
}

/** One worker as the main thread sees it. */
class Member {
  readonly worker: Worker;
  /** Its final counters, once it said it is done. */
  final: Counters | undefined;
  readonly exited: Promise<void>;
  #next: ((m: WorkerMessage | undefined) => void) | undefined;

  constructor(worker: Worker) {
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.once('exit', () => this.deliver(undefined));
  }

  send(message: MainMessage): void {
    this.worker.postMessage(message);
  }

  /** Its next start-up message ('ready', 'bound', 'failed'); undefined once it has exited. */
  expect(): Promise<WorkerMessage | undefined> {
    return new Promise((resolve) => {
      this.#next = resolve;
    });
  }

  /** Hands a start-up message to whoever waits for one. */
  deliver(m: WorkerMessage | undefined): void {
    const next = this.#next;
    this.#next = undefined;
    next?.(m);
  }
}

/** The error a worker reported, as the main thread would have thrown it: one line, exit 1. */
function workerError(m: { code: string | undefined; message: string }): UdpError {
  const code = (m.code?.startsWith('UDP_ERR_') ? m.code : 'UDP_ERR_SOCKET') as UdpErrorCode;
  return new UdpError(code, m.message);
}

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
  if (nativeUnavailableReason !== undefined) {
    throw new NotSupportedError(
      `--workers needs the native transport (SO_REUSEPORT) (${nativeUnavailableReason})`,
    );
  }
  if (entry === undefined) throw new Error('no module to start workers from');
  const n = opts.workers;
  const shared = new SharedArrayBuffer(n * COUNTER_SLOTS * 8);
  const slots = new Float64Array(shared);
  const claims = opts.count === undefined ? undefined : new SharedArrayBuffer(4);
  const out = new BatchWriter(stdoutTarget());
  let names: string[] = [];
  let failure: Error | undefined;
  let stopped = false;
  let paused = false;
  const members: Member[] = [];
  const stopAll = () => {
    if (stopped) return;
    stopped = true;
    for (const m of members) m.send({ type: 'stop' });
  };
  const fail = (err: Error) => {
    failure ??= err;
    stopAll();
  };
  out.onError(() => stopAll());
  out.onDrain(() => {
    if (paused && !out.saturated) {
      paused = false;
      for (const m of members) m.send({ type: 'resume' });
    }
  });
  io.signal.addEventListener('abort', stopAll, { once: true });

  // Every worker starts and warms up at once; they bind in turn, once ready.
  const { access, ...plain } = opts;
  for (let index = 0; index < n; index++) {
    const data: WorkerData = {
      udpkit: 'receiver',
      index,
      workers: n,
      verb: hooks.verb,
      spec: hooks.spec,
      opts: { ...plain, access: undefined },
      rules: access?.rules,
      claims,
      counters: shared,
    };
    const member = new Member(new Worker(entry, { workerData: data, stdin: false }));
    member.worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'out') {
        out.write(new Uint8Array(m.data), m.records);
        if (out.saturated && !paused) {
          paused = true;
          for (const other of members) other.send({ type: 'pause' });
        }
      } else if (m.type === 'count') stopAll();
      else if (m.type === 'done') member.final = m.counters;
      else {
        if (m.type === 'failed') fail(workerError(m));
        member.deliver(m);
      }
    });
    member.worker.on('error', (err) => fail(new Error(`worker ${index}: ${err.message}`)));
    members.push(member);
  }

  // Bind in order: the first to the port asked for, the others to the one it got.
  let port = opts.port;
  let local: { address: string; port: number } | undefined;
  let granted = 0;
  const readies = members.map((m) => m.expect());
  for (let i = 0; i < n && !stopped; i++) {
    const ready = await readies[i];
    if (ready?.type !== 'ready' || stopped) break;
    const member = members[i] as Member;
    const answer = member.expect();
    member.send({ type: 'bind', port });
    const m = await answer;
    if (m?.type !== 'bound') break;
    if (i === 0) {
      port = m.port;
      local = { address: m.address, port: m.port };
      granted = m.granted;
      names = m.names;
    }
  }
  const allBound = !stopped && local !== undefined;
  if (allBound && opts.steer === 'cpu') (members[0] as Member).send({ type: 'steer' });
  if (allBound && local !== undefined && !opts.quiet) {
    io.stderr.write(
      `Listening on ${formatEndpoint(local.address, local.port)} (${n} workers${opts.steer === 'cpu' ? ', steered by CPU' : ''})\n`,
    );
  }
  if (allBound) warnIfBufferCapped(io, name, opts.rcvbuf, granted);

  const counters = (): ListenCounters => {
    const per = members.map((m, i) => {
      if (m.final !== undefined) return m.final;
      const c: Counters = {};
      for (const [k, key] of names.entries()) c[key] = fromSlot(slots[i * COUNTER_SLOTS + k] as number);
      return c;
    });
    const summed = sum(per, names);
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
    opts.stats === undefined || !allBound
      ? () => {}
      : startStats(io.stderr, name, opts.stats, counters, 'received');
  const stopIdle =
    opts.idleTimeout === undefined
      ? () => {}
      : watchSilence(opts.idleTimeout, slots, n, () => paused, stopAll);
  let abandoned = 0;
  try {
    if (!allBound) stopAll();
    await Promise.all(members.map((m) => m.exited));
  } finally {
    stopIdle();
    abandoned = await finishOutput(out, io.signal);
    await settleSignals();
    stopStats();
    if (failure === undefined) {
      if (allBound) reportEnd(io, name, opts, hooks, counters(), abandoned, granted);
      else
        io.stderr.write(
          `${name}: stopped before it was listening; received ${counters().received} datagrams\n`,
        );
    }
  }
  if (failure) throw failure;
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
