/** A worker's side of the conversation with the main thread: post, stop, and the port to bind. */
import type { MessagePort } from 'node:worker_threads';
import { bindOrStop, type MainMessage, type WorkerMessage } from './protocol.js';

/** See {@link linkToMain}. */
export interface WorkerLink {
  post(message: WorkerMessage): void;
  /** Fires when the main thread says stop. */
  readonly signal: AbortSignal;
  /** Says it is ready, then resolves to the port to bind, or undefined when told to stop first. */
  ready(): Promise<number | undefined>;
  /** Posts its final counters and lets the thread end. */
  done(counters: Record<string, number | undefined>): void;
  /** Lets the thread end (after a 'failed'). */
  close(): void;
}

/** Handles 'bind' and 'stop'; every other message of the main thread goes to `other`. */
export function linkToMain(port: MessagePort, other: (m: MainMessage) => void = () => {}): WorkerLink {
  const stop = new AbortController();
  let bindTo: ((port: number) => void) | undefined;
  const bindPort = new Promise<number>((resolve) => {
    bindTo = resolve;
  });
  port.on('message', (m: MainMessage) => {
    if (m.type === 'bind') bindTo?.(m.port);
    else if (m.type === 'stop') stop.abort();
    else other(m);
  });
  const post = (message: WorkerMessage) => port.postMessage(message);
  return {
    post,
    signal: stop.signal,
    ready() {
      post({ type: 'ready' });
      return bindOrStop(bindPort, stop.signal);
    },
    done(counters) {
      post({ type: 'done', counters });
      port.close();
    },
    close: () => port.close(),
  };
}
