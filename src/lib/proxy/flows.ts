/**
 * A proxy's flow table, as a NAT keeps one: each client address and port gets its own entry
 * (and upstream socket), bounded in number and forgotten after a silence, so that a flood of
 * spoofed sources costs at most `max` entries. When it is full, new clients are refused (and
 * counted by the caller) rather than old ones evicted: a flood cannot push out a live flow.
 */

/** What the table needs of an entry. */
export interface FlowEntry {
  /** When it last carried a datagram, either way (ms on the table's clock). */
  lastSeen: number;
}

export class FlowTable<F extends FlowEntry> {
  readonly max: number;
  readonly idleTimeout: number;
  #flows = new Map<string, F>();

  constructor(max: number, idleTimeout: number) {
    this.max = max;
    this.idleTimeout = idleTimeout;
  }

  get size(): number {
    return this.#flows.size;
  }

  get(key: string): F | undefined {
    return this.#flows.get(key);
  }

  /** Adds a flow; false when the table is full (nothing added). */
  add(key: string, flow: F): boolean {
    if (this.#flows.size >= this.max) return false;
    this.#flows.set(key, flow);
    return true;
  }

  /** Removes the flow under `key`, if it is still `flow`. */
  delete(key: string, flow: F): void {
    if (this.#flows.get(key) === flow) this.#flows.delete(key);
  }

  /** Removes and returns the flows silent for `idleTimeout` by `now`. */
  expire(now: number): F[] {
    const gone: F[] = [];
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastSeen >= this.idleTimeout) {
        this.#flows.delete(key);
        gone.push(flow);
      }
    }
    return gone;
  }

  /** Every flow, in order of creation. */
  all(): IterableIterator<F> {
    return this.#flows.values();
  }

  /** Removes and returns every flow. */
  clear(): F[] {
    const all = [...this.#flows.values()];
    this.#flows.clear();
    return all;
  }
}
