/**
 * `createProxy`: a UDP proxy that impairs what it relays, as netem does on a link, with no
 * privileges. Each client address and port gets its own upstream socket (a flow, as in a
 * NAT's table), so that replies go back to the right client; each direction has its own
 * impairments (or a policy of the caller's), decided per datagram from a seeded stream, and
 * what is delayed leaves on the core's scheduler. Every datagram received is forwarded,
 * dropped with a cause, or still waiting, and the counters say which.
 */

import { type Endpoint, type LookupFunction, maxPayload, resolveHost } from '../address.js';
import { InvalidArgumentError } from '../errors.js';
import { hdr } from '../hdr.js';
import { type DropCause, flipBit, Impairer, type Impairments, type Outcome } from '../impair/impairer.js';
import { type Random, randomSeed, seededRandom } from '../impair/random.js';
import { checkScenario, phaseAt, type Scenario } from '../impair/scenario.js';
import { ARRIVAL, type Datagram } from '../inbox.js';
import { defaultScheduler, type Scheduler } from '../scheduler.js';
import { openUdpSocket, UdpSocket } from '../socket.js';
import type { TransportKind } from '../transport.js';
import { type FlowEntry, FlowTable } from './flows.js';

/** `up`: client to target; `down`: target to client. */
export type Direction = 'up' | 'down';

/** What a policy decides of one datagram. */
export type PolicyDecision = 'pass' | 'drop' | 'duplicate' | 'corrupt' | { delay: number };

/** A datagram as a policy sees it. */
export interface PolicyDatagram {
  data: Uint8Array;
  direction: Direction;
  /** The flow's number, from 1 in order of first datagram. */
  flow: number;
  /** Its index in its flow and direction, from 0. */
  index: number;
}

/** Decides per datagram instead of the impairments: `random` is the direction's seeded stream. */
export type Policy = (datagram: PolicyDatagram, context: { now: number; random: Random }) => PolicyDecision;

/** Why a datagram was dropped: an impairment's cause, the flow table full, or the policy. */
export type ProxyDropCause = DropCause | 'flows' | 'policy' | 'link';

/** One decision, as the event log writes it. */
export interface ProxyEvent {
  /** Milliseconds since the proxy started. */
  t: number;
  flow: number;
  dir: Direction;
  /** The datagram's index in its flow and direction. */
  i: number;
  action: 'pass' | 'drop';
  cause?: ProxyDropCause;
  /** The duplicate, not the original. */
  copy?: true;
  /** Milliseconds it is held. */
  delay?: number;
  corrupted?: true;
  truncated?: true;
  reordered?: true;
  size: number;
  /** The scenario's phase it was decided in (its number, from 1). */
  phase?: number;
}

/** An event's own fields, in the order the log writes them. */
type EventFields = Omit<ProxyEvent, 't' | 'flow' | 'dir' | 'i' | 'phase'>;

/** Options of {@link createProxy}. */
export interface ProxyOptions {
  /** Where clients send (default 127.0.0.1, port 0: read it with `address()`). */
  listen?: { address?: string; port?: number };
  /** Where it relays to. */
  target: { host: string; port: number };
  /** Client to target (default none). */
  up?: Impairments;
  /** Target to client (default none). */
  down?: Impairments;
  /** Decides instead of `up` and `down`. */
  policy?: Policy;
  /** Phases of impairments over time, instead of `up` and `down`; time counts from the start. */
  scenario?: Scenario;
  /** The same seed and the same input give the same decisions (default: a random one, in `seed`). */
  seed?: number;
  /** Flows at most (default 1024): a new client past it is dropped and counted. */
  maxFlows?: number;
  /** A flow silent this long (ms) is forgotten and its socket closed (default 60 s). */
  flowIdleTimeout?: number;
  /** Impair only the flows of clients it accepts; the others pass clean. */
  match?: (client: Endpoint) => boolean;
  /** Each decision, as it is made. */
  onEvent?: (event: ProxyEvent) => void;
  /**
   * Each datagram as it passes a socket of the proxy, either way (in from a client, out to the
   * target, in from the target, out to a client), with the time (ms since the epoch: the
   * kernel's receive time for those coming in) and the addresses of that leg: for a pcap.
   */
  onPacket?: (at: number, from: Endpoint, to: Endpoint, data: Uint8Array) => void;
  scheduler?: Scheduler;
  transport?: TransportKind | 'auto';
  lookup?: LookupFunction;
  signal?: AbortSignal;
}

/** One direction's counters. */
export interface DirectionStats {
  received: number;
  bytes: number;
  /** Copies made (each then forwarded or dropped like any datagram). */
  duplicated: number;
  /** Handed to the kernel. */
  forwarded: number;
  dropped: Record<ProxyDropCause, number>;
  /** Held, not yet sent. */
  pending: number;
  /** Sends the kernel refused. */
  sendErrors: number;
  /** Still held when the proxy closed: never sent. */
  abandoned: number;
  /**
   * Dropped by the kernel before the proxy could read them (a receive buffer full): up, the
   * listening socket's; down, the flows' sockets' (read when each closes). Not in `received`.
   */
  kernelDrops: number;
  reordered: number;
  corrupted: number;
  truncated: number;
  /** Sent after a delay, and how long they were held (ms). */
  delayed: number;
  delay: { mean: number; p99: number; max: number };
}

/** The default of {@link ProxyOptions.maxFlows}. */
export const DEFAULT_MAX_FLOWS = 1024;
/** The default of {@link ProxyOptions.flowIdleTimeout}. */
export const DEFAULT_FLOW_IDLE_TIMEOUT = 60_000;

interface Flow extends FlowEntry {
  id: number;
  client: Endpoint;
  /** The client's address as a reply needs it: where it sent (see UdpSocket.reply). */
  replyTo: Datagram;
  /** Connected to the target once `connected`. */
  upstream: UdpSocket;
  connected: boolean;
  /** It could not connect: what it is given is refused. */
  failed: boolean;
  /** Its socket's address, once connected (kept: a closed socket no longer says). */
  local: Endpoint | undefined;
  /**
   * Datagrams for the target, copies, in order: sent together (one sendmmsg) once the batch
   * in hand is handled, or once the socket is connected.
   */
  outbox: Uint8Array[];
  impaired: boolean;
  sent: Record<Direction, number>;
}

class Side {
  readonly direction: Direction;
  readonly random: Random;
  readonly impairer: Impairer | undefined;
  /** With a scenario, one impairer per phase (undefined: clean), on the same stream. */
  readonly phases: (Impairer | undefined)[];
  readonly stats: Omit<DirectionStats, 'delay'>;
  readonly histogram = hdr().build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });

  constructor(
    direction: Direction,
    impairments: Impairments | undefined,
    random: Random,
    origin: number,
    scenario?: Scenario,
  ) {
    this.direction = direction;
    this.random = random;
    // None where there is nothing to impair: those datagrams skip the decision.
    const impairer = (im: Impairments | undefined) =>
      im && Object.values(im).some((v) => v !== undefined) ? new Impairer(im, random, origin) : undefined;
    this.impairer = impairer(impairments);
    this.phases = (scenario?.phases ?? []).map((p) => impairer(p[direction]));
    this.stats = {
      received: 0,
      bytes: 0,
      duplicated: 0,
      forwarded: 0,
      dropped: { loss: 0, queue: 0, mtu: 0, flows: 0, policy: 0, link: 0 },
      pending: 0,
      sendErrors: 0,
      abandoned: 0,
      kernelDrops: 0,
      reordered: 0,
      corrupted: 0,
      truncated: 0,
      delayed: 0,
    };
  }

  snapshot(): DirectionStats {
    const h = this.histogram;
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      ...this.stats,
      dropped: { ...this.stats.dropped },
      delay:
        h.totalCount === 0
          ? { mean: 0, p99: 0, max: 0 }
          : {
              mean: ms(h.mean),
              p99: ms(Math.min(h.getValueAtPercentile(99), h.maxValue)),
              max: ms(h.maxValue),
            },
    };
  }
}

/** A running proxy. */
export class UdpProxy {
  /** The seed its decisions come from. */
  readonly seed: number;
  readonly target: Endpoint;
  #listen: UdpSocket;
  #options: ProxyOptions;
  #scheduler: Scheduler;
  #flows: FlowTable<Flow>;
  #nextFlow = 1;
  #sides: Record<Direction, Side>;
  #start: number;
  #held = new Set<{ cancel(): void; side: Side }>();
  /** Flows with datagrams in their outbox, to send once the batch in hand is handled. */
  #dirty: Flow[] = [];
  #sweep: NodeJS.Timeout;
  #closed = false;
  #consuming: Promise<void>;
  #lastActivity: number;
  /** Where clients send (kept: a closed socket no longer says). */
  #listenAddress: Endpoint;
  /** The largest payload the target's family carries. */
  #upLimit: number;
  #closing: Promise<void> | undefined;

  /** @internal use {@link createProxy} */
  constructor(listen: UdpSocket, target: Endpoint, seed: number, options: ProxyOptions) {
    this.#listen = listen;
    this.#listenAddress = listen.address();
    this.target = target;
    this.#upLimit = maxPayload(target.family === 'IPv6' ? 'IPv6' : 'IPv4');
    this.seed = seed;
    this.#options = options;
    this.#scheduler = options.scheduler ?? defaultScheduler();
    this.#start = this.#scheduler.now();
    this.#lastActivity = this.#start;
    this.#flows = new FlowTable(
      options.maxFlows ?? DEFAULT_MAX_FLOWS,
      options.flowIdleTimeout ?? DEFAULT_FLOW_IDLE_TIMEOUT,
    );
    if (options.scenario) checkScenario(options.scenario);
    this.#sides = {
      up: new Side('up', options.up, seededRandom(seed, 0), this.#start, options.scenario),
      down: new Side('down', options.down, seededRandom(seed, 1), this.#start, options.scenario),
    };
    this.#consuming = listen.consume((msg) => this.#guard(this.#sides.up, () => this.#fromClient(msg)));
    this.#consuming.catch(() => {});
    const every = Math.min(1000, Math.max(10, this.#flows.idleTimeout / 4));
    this.#sweep = setInterval(() => this.#expire(), every);
    this.#sweep.unref();
  }

  /** Where clients send. */
  address(): Endpoint {
    return this.#listenAddress;
  }

  /** Flows open now. */
  get flows(): number {
    return this.#flows.size;
  }

  /**
   * Milliseconds since a datagram last came in or went out, either way; 0 while any is held
   * (it will go out).
   */
  idleFor(): number {
    if (this.#sides.up.stats.pending + this.#sides.down.stats.pending > 0) return 0;
    return this.#now() - this.#lastActivity;
  }

  /** Flows opened since the start. */
  get flowsOpened(): number {
    return this.#nextFlow - 1;
  }

  /** The counters of a direction. */
  stats(direction: Direction): DirectionStats {
    if (direction === 'up' && !this.#closed) this.#sides.up.stats.kernelDrops = this.#listen.kernelDrops ?? 0;
    return this.#sides[direction].snapshot();
  }

  /** Closes every socket; what is still held is counted as abandoned. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const held of this.#held) {
      held.cancel();
      held.side.stats.pending--;
      held.side.stats.abandoned++;
    }
    this.#held.clear();
    const up = this.#sides.up.stats;
    for (const flow of this.#flows.all()) {
      up.pending -= flow.outbox.length;
      up.abandoned += flow.outbox.splice(0).length;
    }
    this.#sides.up.stats.kernelDrops = this.#listen.kernelDrops ?? 0;
    const flows = this.#flows.clear();
    await Promise.all([this.#listen.close(), ...flows.map((f) => this.#closeFlow(f))]);
    // Read but not handed over: the rest of a batch when the proxy closed in the middle of it.
    const left = (side: Side, n: number) => {
      side.stats.received += n;
      side.stats.abandoned += n;
    };
    left(this.#sides.up, this.#listen.queued);
    for (const f of flows) left(this.#sides.down, f.upstream.queued);
  }

  #now(): number {
    return this.#scheduler.now();
  }

  /**
   * Runs a receive handler so that nothing it meets (out of descriptors, a caller's callback
   * that throws) ends receiving: the datagram in hand counts as sent in error, and the error is
   * raised where nothing catches it, as a throwing timer callback's is.
   */
  #guard(side: Side, handle: () => void): void {
    try {
      handle();
    } catch (err) {
      // The handlers count a datagram received first, and what they call after deciding
      // guards itself: a throw here comes before the datagram was decided.
      side.stats.sendErrors++;
      reportUncaught(err);
    }
  }

  #fromClient(msg: Datagram): void {
    const side = this.#sides.up;
    side.stats.received++;
    side.stats.bytes += msg.data.length;
    const key = `${msg.from.address}|${msg.from.port}`;
    let flow = this.#flows.get(key);
    if (flow === undefined) {
      flow = this.#openFlow(msg, key);
      if (flow === undefined) {
        side.stats.dropped.flows++;
        this.#emit({
          t: this.#t(),
          flow: 0,
          dir: 'up',
          i: 0,
          action: 'drop',
          cause: 'flows',
          size: msg.data.length,
        });
        return;
      }
    }
    flow.lastSeen = this.#now();
    this.#options.onPacket?.(msg.receivedAt, msg.from, this.#front(flow), msg.data);
    this.#relay(side, flow, msg.data);
  }

  /**
   * A new client's flow, or undefined when there is none to be had: the table full, or no
   * socket (out of descriptors). Either is counted as dropped for `flows`.
   */
  #openFlow(msg: Datagram, key: string): Flow | undefined {
    // Full: refused before any socket is made (a flood of new sources costs nothing more).
    if (this.#flows.size >= this.#flows.max) return undefined;
    let upstream: UdpSocket;
    try {
      upstream = new UdpSocket({
        type: this.target.family === 'IPv6' ? 'udp6' : 'udp4',
        ...(this.#options.transport && { transport: this.#options.transport }),
        recvBufferSize: FLOW_RCVBUF,
      });
    } catch {
      // Out of descriptors (EMFILE) and the like: this datagram is refused, the proxy goes on.
      return undefined;
    }
    const impaired = this.#options.match ? this.#options.match(msg.from) : true;
    const flow: Flow = {
      id: this.#nextFlow++,
      client: msg.from,
      replyTo: { data: EMPTY, from: msg.from, receivedAt: 0, [ARRIVAL]: msg[ARRIVAL] },
      upstream,
      connected: false,
      failed: false,
      local: undefined,
      outbox: [],
      impaired,
      sent: { up: 0, down: 0 },
      lastSeen: this.#now(),
    };
    this.#flows.add(key, flow);
    // Connected: only the target answers through it, and it knows its own source address.
    upstream.connect(this.target.port, this.target.address).then(
      () => {
        flow.connected = true;
        flow.local = upstream.address();
        if (flow.outbox.length > 0) this.#sendOut(flow, flow.outbox.splice(0));
        const down = this.#sides.down;
        const done = upstream.consume((reply) =>
          this.#guard(down, () => {
            flow.lastSeen = this.#now();
            down.stats.received++;
            down.stats.bytes += reply.data.length;
            this.#options.onPacket?.(reply.receivedAt, reply.from, flow.local as Endpoint, reply.data);
            this.#relay(down, flow, reply.data);
          }),
        );
        done.catch(() => {});
      },
      () => {
        // It cannot reach the target: what waited is refused, as a send would be, and so is
        // what comes later; the flow is forgotten, so that the client's next datagram tries
        // again with a new one.
        flow.failed = true;
        const up = this.#sides.up;
        up.stats.pending -= flow.outbox.length;
        up.stats.sendErrors += flow.outbox.splice(0).length;
        this.#flows.delete(key, flow);
        void upstream.close();
      },
    );
    return flow;
  }

  #relay(side: Side, flow: Flow, data: Uint8Array): void {
    const now = this.#now();
    this.#lastActivity = now;
    const index = flow.sent[side.direction]++;
    const phase = this.#phase(now);
    const outcomes =
      phase !== undefined && flow.impaired && this.#options.scenario?.phases[phase]?.linkDown
        ? LINK_DOWN
        : this.#decide(side, flow, now, data, index, phase);
    // Events are built only for someone who listens: this runs per datagram.
    const logging = this.#options.onEvent !== undefined;
    if (outcomes === undefined) {
      // Nothing to impair: it goes as it came.
      if (logging) this.#log(side, flow, index, now, phase, { action: 'pass', size: data.length });
      this.#send(side, flow, data, undefined);
      return;
    }
    for (const o of outcomes) {
      if (o.copy) side.stats.duplicated++;
      if (o.action === 'drop') {
        side.stats.dropped[o.cause]++;
        if (logging)
          this.#log(side, flow, index, now, phase, {
            action: 'drop',
            cause: o.cause,
            ...(o.copy && { copy: true }),
            size: data.length,
          });
        continue;
      }
      if (o.reordered) side.stats.reordered++;
      if (o.corrupted) side.stats.corrupted++;
      if (o.truncated) side.stats.truncated++;
      if (logging)
        this.#log(side, flow, index, now, phase, {
          action: 'pass',
          ...(o.copy && { copy: true }),
          ...(o.delay > 0 && { delay: Math.round(o.delay * 1000) / 1000 }),
          ...(o.corrupted && { corrupted: true }),
          ...(o.truncated && { truncated: true }),
          ...(o.reordered && { reordered: true }),
          size: o.data.length,
        });
      if (o.delay <= 0) {
        this.#send(side, flow, o.data, undefined);
        continue;
      }
      if (this.#closed) {
        // Closed meanwhile (by a callback): never sent.
        side.stats.abandoned++;
        continue;
      }
      // A flow is not idle while it holds a datagram: not forgotten before it leaves.
      flow.lastSeen = Math.max(flow.lastSeen, o.at);
      // Held past this call: the received bytes are lent, so keep a copy.
      const bytes = o.corrupted ? o.data : Uint8Array.prototype.slice.call(o.data);
      side.stats.pending++;
      const held = {
        side,
        cancel: () => call.cancel(),
      };
      const call = this.#scheduler.at(o.at, () => {
        this.#held.delete(held);
        side.stats.pending--;
        this.#send(side, flow, bytes, now, true);
      });
      this.#held.add(held);
    }
  }

  /** The scenario's phase now (its index), or undefined without one. */
  #phase(now: number): number | undefined {
    const scenario = this.#options.scenario;
    return scenario && phaseAt(scenario, now - this.#start);
  }

  #decide(
    side: Side,
    flow: Flow,
    now: number,
    data: Uint8Array,
    index: number,
    phase: number | undefined,
  ): readonly Outcome[] | undefined {
    const policy = this.#options.policy;
    if (!flow.impaired) return undefined;
    if (phase !== undefined) return side.phases[phase]?.decide(now, data);
    if (policy === undefined) return side.impairer?.decide(now, data);
    let decision: PolicyDecision;
    try {
      decision = policy(
        { data, direction: side.direction, flow: flow.id, index },
        { now, random: side.random },
      );
    } catch (err) {
      // The caller's code failed: said as an uncaught exception (as a throwing timer callback
      // is), and the datagram counted as the policy's drop; the proxy goes on.
      reportUncaught(err);
      return POLICY_DROP;
    }
    const send = (extra: Partial<Extract<Outcome, { action: 'send' }>> = {}): Outcome => ({
      action: 'send',
      at: now,
      delay: 0,
      data,
      copy: false,
      corrupted: false,
      truncated: false,
      reordered: false,
      ...extra,
    });
    if (decision === 'pass') return [send()];
    if (decision === 'drop') return POLICY_DROP;
    if (decision === 'duplicate') return [send({ copy: true }), send()];
    if (decision === 'corrupt') {
      const bytes = flipBit(data, side.random);
      return [send(bytes === undefined ? {} : { data: bytes, corrupted: true })];
    }
    if (typeof decision === 'object' && decision.delay >= 0)
      return [send({ at: now + decision.delay, delay: decision.delay })];
    reportUncaught(
      new InvalidArgumentError(
        `a policy returned ${JSON.stringify(decision)}: not pass, drop, duplicate, corrupt or { delay }`,
      ),
    );
    return POLICY_DROP;
  }

  /**
   * Sends now a datagram a decision held since `heldSince` (undefined: sent as it came), and
   * counts how long it was really held: the decided delay, and any wait of the loop. One the
   * proxy is closing no longer goes: abandoned.
   */
  #send(side: Side, flow: Flow, data: Uint8Array, heldSince: number | undefined, owned = false): void {
    if (this.#closed) {
      side.stats.abandoned++;
      return;
    }
    if (side.direction === 'up' && (flow.failed || data.length > this.#upLimit)) {
      // A flow that could not connect, or a datagram too large for the target's family (an
      // IPv6 client's to an IPv4 target): refused, as the kernel would refuse it.
      side.stats.sendErrors++;
      return;
    }
    const now = this.#now();
    this.#lastActivity = now;
    if (heldSince !== undefined) {
      side.stats.delayed++;
      side.histogram.recordValue(Math.max(1, Math.round((now - heldSince) * 1000)));
    }
    if (side.direction === 'up') {
      // Into the flow's outbox, a copy (the received bytes are lent), sent with the others of
      // the batch in hand: what came in together goes out together.
      side.stats.pending++;
      if (flow.outbox.push(owned ? data : Buffer.from(data)) === 1 && flow.connected) {
        this.#dirty.push(flow);
        if (this.#dirty.length === 1) queueMicrotask(this.#flush);
      }
      return;
    }
    const onPacket = this.#options.onPacket;
    const ok = () => {
      side.stats.forwarded++;
      if (onPacket) this.#show(() => onPacket(wallClock(), this.#front(flow), flow.client, data));
    };
    // A send that must wait: the bytes may be lent (a receive buffer), so keep them for onPacket.
    // It is pending until the kernel takes it or refuses it.
    const later = () => {
      const kept = onPacket ? Uint8Array.prototype.slice.call(data) : data;
      side.stats.pending++;
      return () => {
        side.stats.pending--;
        side.stats.forwarded++;
        if (onPacket) this.#show(() => onPacket(wallClock(), this.#front(flow), flow.client, kept));
      };
    };
    const refused = () => {
      side.stats.pending--;
      side.stats.sendErrors++;
    };
    try {
      // node:dgram's tryReply learns of a refusal only later: there, the promise says.
      if (this.#listen.transport === 'native' && this.#listen.tryReply(flow.replyTo, data)) ok();
      else this.#listen.reply(flow.replyTo, data).then(later(), refused);
    } catch {
      side.stats.sendErrors++;
    }
  }

  /** Sends what the flows' outboxes hold: once per batch received, after it is handled. */
  readonly #flush = (): void => {
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const flow of dirty) if (flow.outbox.length > 0) this.#sendOut(flow, flow.outbox.splice(0));
  };

  /**
   * Sends datagrams to the target in one call; each the kernel takes is forwarded, one it
   * refuses (an ICMP error the socket reports) is a send error, and those after it go on.
   */
  #sendOut(flow: Flow, list: Uint8Array[]): void {
    const side = this.#sides.up;
    const forwarded = (n: number) => {
      side.stats.forwarded += n;
      const onPacket = this.#options.onPacket;
      if (onPacket === undefined) return;
      const at = wallClock();
      const from = flow.local as Endpoint;
      for (let i = 0; i < n; i++) this.#show(() => onPacket(at, from, this.target, list[i] as Uint8Array));
    };
    if (list.length === 1 && flow.upstream.transport === 'native') {
      // One alone (light traffic): sent now if the kernel takes it, with no promise to wait on.
      // (node:dgram's trySend learns of a refusal only later: there, the promise says.)
      try {
        if (flow.upstream.trySend(list[0] as Uint8Array)) {
          side.stats.pending--;
          forwarded(1);
          return;
        }
      } catch {
        side.stats.pending--;
        side.stats.sendErrors++;
        return;
      }
    }
    flow.upstream.sendEach(list).then(
      () => {
        side.stats.pending -= list.length;
        forwarded(list.length);
      },
      (err: unknown) => {
        const sent = Math.min((err as { sent?: number }).sent ?? 0, list.length - 1);
        side.stats.pending -= list.length;
        forwarded(sent);
        side.stats.sendErrors++;
        const rest = list.slice(sent + 1);
        if (rest.length === 0) return;
        if (this.#closed) side.stats.abandoned += rest.length;
        else {
          side.stats.pending += rest.length;
          this.#sendOut(flow, rest);
        }
      },
    );
  }

  /** Calls onPacket: a throw is the caller's, raised as uncaught, and the proxy goes on. */
  #show(call: () => void): void {
    try {
      call();
    } catch (err) {
      reportUncaught(err);
    }
  }

  /** The proxy's end of a flow's client leg: where the client sent. */
  #front(flow: Flow): Endpoint {
    const local = this.#listenAddress;
    const to = flow.replyTo[ARRIVAL]?.to;
    return to === undefined ? local : { address: to, port: local.port, family: local.family };
  }

  #t(now = this.#now()): number {
    return Math.round((now - this.#start) * 1000) / 1000;
  }

  /** Emits a decision's event: `phase` is the phase's index, if a scenario runs. */
  #log(
    side: Side,
    flow: Flow,
    index: number,
    now: number,
    phase: number | undefined,
    what: EventFields,
  ): void {
    this.#emit({
      t: this.#t(now),
      flow: flow.id,
      dir: side.direction,
      i: index,
      ...what,
      ...(phase !== undefined && { phase: phase + 1 }),
    });
  }

  #emit(event: ProxyEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (err) {
      reportUncaught(err);
    }
  }

  #expire(): void {
    for (const flow of this.#flows.expire(this.#now())) void this.#closeFlow(flow);
  }

  #closeFlow(flow: Flow): Promise<void> {
    // node:dgram's count reads all of /proc/net/udp: per flow, that is quadratic; natively it
    // is the socket's own counter.
    if (flow.upstream.transport === 'native')
      this.#sides.down.stats.kernelDrops += flow.upstream.kernelDrops ?? 0;
    return flow.upstream.close();
  }
}

const EMPTY = Buffer.alloc(0);
const LINK_DOWN: readonly Outcome[] = [{ action: 'drop', cause: 'link' as DropCause, copy: false }];
const POLICY_DROP: readonly Outcome[] = [{ action: 'drop', cause: 'policy' as DropCause, copy: false }];

/** Milliseconds since the epoch, to the microsecond: a pcap's time of a datagram sent. */
function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** An error of the caller's callback, raised where nothing catches it, as Node does a timer's. */
function reportUncaught(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}
/** Receive buffers: where every client sends, room for a burst (as listen's); each flow's, less. */
const LISTEN_RCVBUF = 4 * 1024 * 1024;
const FLOW_RCVBUF = 1024 * 1024;

/**
 * Starts a proxy: binds where clients send, resolves the target once, and relays.
 *
 * @throws {InvalidArgumentError} on impossible impairments, and the errors of binding
 */
export async function createProxy(options: ProxyOptions): Promise<UdpProxy> {
  const { target, signal, lookup } = options;
  const resolved = await resolveHost(target.host, { signal, lookup });
  const seed = options.seed ?? randomSeed();
  const listen = await openUdpSocket({
    address: options.listen?.address ?? '127.0.0.1',
    port: options.listen?.port ?? 0,
    // Replies leave from the address each client sent to (native transport).
    metadata: true,
    // Not coalesced: waking per batch instead of once a millisecond keeps the added latency in
    // microseconds, and costs no throughput here (sends, not wake-ups, are the proxy's work).
    recvBufferSize: LISTEN_RCVBUF,
    ...(options.transport && { transport: options.transport }),
    ...(lookup && { lookup }),
    ...(signal && { signal }),
  });
  try {
    return new UdpProxy(
      listen,
      { address: resolved.address, port: target.port, family: resolved.family },
      seed,
      options,
    );
  } catch (err) {
    await listen.close();
    throw err;
  }
}
