/**
 * The bench's control exchange, in-band over UDP: each message is sent again at an interval
 * until its answer arrives or time runs out, so a run gets through a path that loses a good
 * share of everything, and fails with a clear message when nobody answers.
 */
import { AbortError, ConnectionRefusedError, SocketError, TimeoutError } from '../errors.js';

/** A control message: JSON with a `type`. */
export interface ControlMessage {
  type: string;
  [key: string]: unknown;
}

/** Every control message there is: one of these that nobody awaits is a repeat. */
export const CONTROL_TYPES: ReadonlySet<string> = new Set([
  'hello',
  'welcome',
  'refused',
  'start',
  'started',
  'stop',
  'stopping',
  'sent',
  'report',
  'bye',
]);

/** Where answers are awaited: the receive loop hands it every control message. */
interface Waiter {
  accept: (m: ControlMessage) => boolean;
  resolve: (m: ControlMessage) => void;
}

export class Mailbox {
  #waiting: Waiter[] = [];

  /** A control message arrived: the first waiter that accepts it takes it. Returns whether one did. */
  deliver(message: ControlMessage): boolean {
    const i = this.#waiting.findIndex((w) => w.accept(message));
    if (i < 0) return false;
    const [w] = this.#waiting.splice(i, 1);
    w?.resolve(message);
    return true;
  }

  /** The next message of `type` (that `accept` takes, if given). */
  next(
    type: string,
    accept: (m: ControlMessage) => boolean = () => true,
  ): {
    promise: Promise<ControlMessage>;
    cancel: () => void;
  } {
    let entry: Waiter | undefined;
    const promise = new Promise<ControlMessage>((resolve) => {
      entry = { accept: (m) => m.type === type && accept(m), resolve };
      this.#waiting.push(entry);
    });
    return {
      promise,
      cancel: () => {
        this.#waiting = this.#waiting.filter((w) => w !== entry);
      },
    };
  }
}

/** Options of {@link ask}. */
export interface AskOptions {
  /** Sends again after this many ms without an answer (default 250). */
  retryMs?: number;
  /** Gives up after this many ms (default 5000). */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Says what was asked, for the timeout's message: `no bench server answered at ...`. */
  failure: string;
  /**
   * An error that ends the asking at once (the peer's ICMP port unreachable, heard by a send or
   * by the receive path): checked after each send and at each retry.
   */
  fatal?: () => Error | undefined;
}

/**
 * Sends with `send` now and again every `retryMs` until `mailbox` gets a message of `type`
 * that `accept` takes; resolves to it. Sends that fail (ICMP refused, say) are tried again too.
 *
 * @throws {TimeoutError} when nothing answered within `timeoutMs`
 * @throws {AbortError} when `signal` fires
 */
export async function ask(
  mailbox: Mailbox,
  send: () => Promise<unknown>,
  type: string,
  options: AskOptions,
  accept?: (m: ControlMessage) => boolean,
): Promise<ControlMessage> {
  const { retryMs = 250, timeoutMs, signal } = options;
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const answer = mailbox.next(type, accept);
  let timer: NodeJS.Timeout | undefined;
  let lastError: unknown;
  const started = performance.now();
  try {
    return await new Promise<ControlMessage>((resolve, reject) => {
      const onAbort = () => reject(new AbortError(undefined, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      answer.promise.then((m) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(m);
      });
      const fail = (err: Error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(new SocketError(`${options.failure}: ${err.message}`, { cause: err }));
      };
      const attempt = () => {
        const fatal = options.fatal?.();
        if (fatal) {
          fail(fatal);
          return;
        }
        const left = timeoutMs - (performance.now() - started);
        if (left <= 0) {
          signal?.removeEventListener('abort', onAbort);
          const why = lastError instanceof Error ? ` (${lastError.message})` : '';
          reject(new TimeoutError(`${options.failure} within ${formatMs(timeoutMs)}${why}`));
          return;
        }
        send().then(
          () => {
            lastError = undefined;
          },
          (err: unknown) => {
            lastError = err;
            if (err instanceof ConnectionRefusedError) {
              clearTimeout(timer);
              fail(err);
            }
          },
        );
        timer = setTimeout(attempt, Math.min(retryMs, left));
      };
      attempt();
    });
  } finally {
    clearTimeout(timer);
    answer.cancel();
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A message whose parts are coming. */
interface Pending {
  count: number;
  parts: (Buffer | undefined)[];
  got: number;
}

/**
 * Puts together control messages sent in parts ({@link encodeControlDatagrams}), the parts of
 * every retry adding up. Holds at most a few messages at once: a new one beyond that drops the
 * oldest (its sender says it again).
 */
export class Reassembler {
  #pending = new Map<number, Pending>();
  readonly #limit: number;

  constructor(limit = 4) {
    this.#limit = limit;
  }

  /**
   * Takes part `index` of `count` of message `id`. Returns the message once its last part
   * is in, `undefined` until then, or `'garbled'` when the whole is not a control message.
   */
  add(id: number, index: number, count: number, data: Buffer): ControlMessage | 'garbled' | undefined {
    let p = this.#pending.get(id);
    if (p === undefined || p.count !== count) {
      if (this.#pending.size >= this.#limit)
        this.#pending.delete(this.#pending.keys().next().value as number);
      p = { count, parts: new Array(count), got: 0 };
      this.#pending.set(id, p);
    }
    if (p.parts[index] === undefined) {
      p.parts[index] = Buffer.from(data);
      p.got++;
    }
    if (p.got < count) return undefined;
    this.#pending.delete(id);
    try {
      const message: unknown = JSON.parse(Buffer.concat(p.parts as Buffer[]).toString('utf8'));
      if (
        typeof message !== 'object' ||
        message === null ||
        typeof (message as ControlMessage).type !== 'string'
      )
        return 'garbled';
      return message as ControlMessage;
    } catch {
      return 'garbled';
    }
  }
}
