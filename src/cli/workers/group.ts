/**
 * A group of worker threads, each with a socket of one SO_REUSEPORT group: started at once,
 * bound in turn (the kernel numbers a group's sockets in the order they bind, which CPU
 * steering relies on), stopped together. What they do is the caller's: it gets their messages.
 */
import { Worker } from 'node:worker_threads';
import { NotSupportedError, nativeUnavailableReason, UdpError, type UdpErrorCode } from '../../lib/index.js';
import type { Counters } from '../stats.js';
import type { MainMessage, WorkerMessage } from './protocol.js';

/** The module a worker thread starts from: the command line's entry (see main.ts). */
let entry: URL | undefined;

/** Says which module starts workers: main.ts, which runs a worker when it is started as one. */
export function setWorkerEntry(url: string): void {
  entry = new URL(url);
}

/** One worker as the main thread sees it. */
export class Member {
  readonly worker: Worker;
  /** Its place in the group. */
  readonly index: number;
  /** Its final counters, once it said it is done. */
  final: Counters | undefined;
  readonly exited: Promise<void>;
  #next: ((m: WorkerMessage | undefined) => void) | undefined;

  constructor(worker: Worker, index: number) {
    this.worker = worker;
    this.index = index;
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

/** What the first socket of the group was bound to. */
export interface GroupBound {
  address: string;
  port: number;
  /** The receive buffer the kernel granted. */
  granted: number;
  /** The workers' counter names, in the order of their slots. */
  names: string[];
}

/** See the module comment. */
export class WorkerGroup {
  readonly members: Member[] = [];
  #stopped = false;
  #failure: Error | undefined;

  /**
   * Starts `n` workers at once on the command line's entry; each is given `data(index)`.
   * Their messages other than start-up ones ('ready', 'bound', 'failed') go to `onMessage`;
   * 'failed' stops the group, and its error is {@link failure}.
   *
   * @throws {NotSupportedError} without the native transport: node:dgram in Node 20 cannot
   *   join a SO_REUSEPORT group
   */
  constructor(
    n: number,
    data: (index: number) => object,
    onMessage: (m: WorkerMessage, member: Member) => void,
  ) {
    if (nativeUnavailableReason !== undefined) {
      throw new NotSupportedError(
        `--workers needs the native transport (SO_REUSEPORT) (${nativeUnavailableReason})`,
      );
    }
    if (entry === undefined) throw new Error('no module to start workers from');
    for (let index = 0; index < n; index++) {
      const member = new Member(new Worker(entry, { workerData: data(index), stdin: false }), index);
      member.worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready' || m.type === 'bound') member.deliver(m);
        else if (m.type === 'failed') {
          this.fail(workerError(m));
          member.deliver(m);
        } else onMessage(m, member);
      });
      member.worker.on('error', (err) => this.fail(new Error(`worker ${index}: ${err.message}`)));
      this.members.push(member);
    }
  }

  /** True once stopped: by {@link stop}, or by a failure. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The first failure of a worker, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Tells every worker to stop (once). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.broadcast({ type: 'stop' });
  }

  fail(err: Error): void {
    this.#failure ??= err;
    this.stop();
  }

  broadcast(message: MainMessage): void {
    for (const m of this.members) m.send(message);
  }

  /**
   * Binds the workers in turn, each once warmed up: the first to `port`, the others to the
   * port it got. Resolves to what the first was bound to, or undefined when the group was
   * stopped or failed first.
   */
  async bind(port: number): Promise<GroupBound | undefined> {
    let first: GroupBound | undefined;
    const readies = this.members.map((m) => m.expect());
    for (const [i, member] of this.members.entries()) {
      const ready = await readies[i];
      if (ready?.type !== 'ready' || this.#stopped) return undefined;
      const answer = member.expect();
      member.send({ type: 'bind', port: first?.port ?? port });
      const m = await answer;
      if (m?.type !== 'bound' || this.#stopped) return undefined;
      first ??= { address: m.address, port: m.port, granted: m.granted, names: m.names };
    }
    return first;
  }

  /** Resolves once every worker has exited. */
  async exited(): Promise<void> {
    await Promise.all(this.members.map((m) => m.exited));
  }
}
