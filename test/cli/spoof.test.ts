/**
 * Floods from thousands of source ports and many source addresses in 127.0.0.0/8 (Linux
 * loopback answers all of it), at `proxy` and `echo`: their tables stay within their bounds,
 * every datagram is accounted for, the rate limits hold, and a client that was there before
 * the flood keeps being served both ways. Every sending loop is bounded in count and time.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { openUdpSocket, request, seededRandom, type UdpSocket } from '../../src/lib/index.js';
import { type Running, startListener } from '../helpers/cli.js';
import { parseCounters, peakRss } from '../helpers/proc.js';
import { echoServer, startProxy } from '../helpers/proxy.js';
import { until } from '../helpers/time.js';

/** Sockets bound to port 0 on each address, `perAddress` each; closed when the test ends. */
async function sockets(addresses: string[], perAddress = 1): Promise<UdpSocket[]> {
  const all: UdpSocket[] = [];
  for (const address of addresses)
    for (let i = 0; i < perAddress; i++) all.push(await openUdpSocket({ address, port: 0 }));
  onTestFinished(() => Promise.all(all.map((s) => s.close())).then(() => {}));
  return all;
}

/** `count` addresses in 127.<block>.0.0/16: .0.1 to .0.250, then .1.1, ... */
function addresses(block: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.${block}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
}

/** A seeded shuffle: the flood's order is random, and the same run after run. */
function shuffled<T>(items: T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Every value of `name=N` in the counters lines printed so far. */
function counterValues(stderr: string, name: string): number[] {
  return [...stderr.matchAll(new RegExp(`\\b${name}=(\\d+)`, 'g'))].map((m) => Number(m[1]));
}

/** The counters of a `key=value` line, as numbers; one that is not there fails the test. */
function counters(line: string): (name: string) => number {
  const all = parseCounters(line);
  return (name) => {
    const v = all[name];
    if (v === undefined) throw new Error(`no ${name}= in ${line}`);
    return v;
  };
}

/** Waits until `pace` ms have passed since `since`, without blocking (a sending rate, not a sync). */
async function pace(since: number, ms: number): Promise<void> {
  const left = since + ms - performance.now();
  if (left > 0) await new Promise((r) => setTimeout(r, left));
}

async function stop(running: Running) {
  running.child.kill('SIGINT');
  const r = await running.wait(5000);
  expect(r.code).toBe(130);
  return { ...r, last: counters(r.stderr.trim().split('\n').at(-1) as string) };
}

describe('proxy under a flood of spoofed sources', () => {
  it('keeps flows_open within --max-flows, counts every datagram, and serves the client that was there first', async () => {
    // The target answers everything, so that every flow is used both ways.
    let atTarget = 0;
    const target = await echoServer({
      seen: () => {
        atTarget++;
      },
    });
    const maxFlows = 32;
    const { running, port } = await startProxy(target.address().port, [
      '--max-flows',
      `${maxFlows}`,
      '--flow-idle-timeout',
      '1s',
      '--stats-interval',
      '50ms',
    ]);
    const pid = running.child.pid as number;
    const [first, late] = await sockets(['127.0.0.1', '127.0.0.5']);
    const ask = async (c: UdpSocket, text: string) => {
      const reply = await request(c, text, { port, host: '127.0.0.1', timeout: 2000 });
      expect(reply.data.toString()).toBe(text);
    };
    await ask(first as UdpSocket, 'first 0');
    const rssBefore = peakRss(pid);

    // 2000 source (address, port) pairs: 400 addresses, 5 ports each, in a seeded order. The
    // first 31 fill the table with `first` and keep their flows alive, sending every round;
    // the others send once each, as a spoofed flood does, and find the table full.
    const pairs = shuffled(await sockets(addresses(10, 400), 5), 1);
    const resident = pairs.slice(0, maxFlows - 1);
    const fresh = pairs.slice(maxFlows - 1);
    const perRound = 200;
    let sent = 1;
    let lateSent = 0;
    let answered = 1;
    const started = performance.now();
    for (let i = 0; i < fresh.length && performance.now() - started < 10_000; i += perRound) {
      for (const s of resident) await s.send('resident', port, '127.0.0.1');
      for (const s of fresh.slice(i, i + perRound)) await s.send('spoofed', port, '127.0.0.1');
      // A new client while the table is full of live flows: refused, counted.
      await (late as UdpSocket).send('late', port, '127.0.0.1');
      sent += resident.length + Math.min(perRound, fresh.length - i) + 1;
      lateSent++;
      // The client that was there first, both ways; its answer also says the proxy has read
      // what came before it (one socket's queue, in order).
      await ask(first as UdpSocket, `first ${answered}`);
      answered++;
      sent++;
    }
    expect(answered).toBe(1 + Math.ceil(fresh.length / perRound));
    const rssAfter = peakRss(pid);
    expect((late as UdpSocket).packetsReceived).toBe(0);

    // Flows idle for --flow-idle-timeout are forgotten: then the late client gets in.
    const floodEnded = performance.now();
    let tries = 0;
    for (;;) {
      tries++;
      sent++;
      try {
        await request(late as UdpSocket, 'late again', { port, host: '127.0.0.1', timeout: 100 });
        break;
      } catch (err) {
        if (performance.now() - floodEnded > 5000) throw err;
      }
    }
    const lateWaited = performance.now() - floodEnded;
    expect(lateWaited).toBeGreaterThanOrEqual(900);

    await until(() => running.stderr.includes(`up_received=${sent} `), 3000);
    const r = await stop(running);
    const c = r.last;
    // Never more flows than allowed, and the table was full.
    const open = counterValues(r.stderr, 'flows_open');
    expect(Math.max(...open)).toBe(maxFlows);
    // Every datagram received is forwarded or counted; all the flood's new pairs and the late
    // client's first tries, and nothing else, dropped for want of a flow.
    expect(c('up_drops_kernel')).toBe(0);
    expect(c('up_received')).toBe(sent);
    expect(
      c('up_forwarded') +
        ['flows', 'loss', 'queue', 'mtu', 'policy', 'link'].reduce((a, k) => a + c(`up_drop_${k}`), 0) +
        c('up_pending') +
        c('up_send_errors') +
        c('up_abandoned'),
    ).toBe(sent);
    expect(c('up_drop_flows')).toBe(fresh.length + lateSent + tries - 1);
    expect(c('up_forwarded')).toBe(atTarget);
    expect(c('down_received')).toBe(
      c('down_forwarded') + c('down_send_errors') + c('down_abandoned') + c('down_pending'),
    );
    // A flow for `first`, each resident and the late client: no flow for a refused pair.
    expect(c('flows_opened')).toBe(maxFlows + 1);
    // Memory: what 2000 refused pairs cost on top of 32 flows.
    expect(rssAfter - rssBefore).toBeLessThan(32 * 1024 * 1024);
    console.log(
      `proxy flood: ${sent} datagrams from ${pairs.length + 2} pairs, flows_open max ${Math.max(...open)}, drop_flows ${c('up_drop_flows')}, late client in after ${lateWaited.toFixed(0)} ms, VmHWM ${rssBefore >> 10} -> ${rssAfter >> 10} kB`,
    );
  });
});

describe('echo --rate-limit under a flood of spoofed sources', () => {
  it('answers a client at its rate while more sources than --max-sources come and go, and keeps the table bounded', async () => {
    // 50 answers/s per source, 16 sources remembered: a source that sent once has refilled
    // 20 ms later. 350 spoofed addresses, 14 new ones in each round, rounds at least 50 ms
    // apart: the table fills, and when a new source comes the least recently seen has always
    // refilled, so each is forgotten in turn (nothing lost: a new bucket starts full too) and
    // none of them, nor the client, is ever refused. (More new sources than the table holds
    // within 20 ms would be refused: the next test.)
    const { running, port } = await startListener(
      ['--rate-limit', '50', '--max-sources', '16', '--stats-interval', '50ms'],
      '127.0.0.1',
      'echo',
    );
    const [client] = await sockets(['127.0.0.3']);
    const spoofers = shuffled(await sockets(addresses(20, 350)), 2);
    const rounds = 25;
    let sent = 0;
    for (let i = 0; i < rounds; i++) {
      const round = performance.now();
      for (const s of spoofers.slice(i * 14, i * 14 + 14)) await s.send('spoofed', port, '127.0.0.1');
      const reply = await request(client as UdpSocket, `client ${i}`, {
        port,
        host: '127.0.0.1',
        timeout: 2000,
      });
      expect(reply.data.toString()).toBe(`client ${i}`);
      sent += 15;
      await pace(round, 50);
    }
    await until(() => spoofers.every((s) => s.packetsReceived === 1), 3000);
    await until(() => running.stderr.includes(`received=${sent} `), 3000);
    const r = await stop(running);
    const c = r.last;
    expect(Math.max(...counterValues(r.stderr, 'sources'))).toBe(16);
    // Every one answered: none of them, nor the client, limited or refused.
    expect(['received', 'answered', 'rate_limited', 'sources_full', 'reply_errors'].map(c)).toEqual([
      sent,
      sent,
      0,
      0,
      0,
    ]);
    expect(c('sources')).toBe(16);
    // Logged as listen does: one line each.
    expect(
      r.stdout.split('\n').filter((l) => l.startsWith('Received message: spoofed from 127.20.')),
    ).toHaveLength(350);
  });

  it('a flood of new sources cannot reset one source’s limit: it gets its burst and its rate, no more', async () => {
    // 10 answers/s per source, 16 remembered; 20 new spoofed sources after each of the
    // abuser's requests, more than the table holds. Were the abuser forgotten and made new
    // each time, each of its requests would be answered.
    const { running, port } = await startListener(
      ['--rate-limit', '10', '--max-sources', '16', '--stats-interval', '50ms'],
      '127.0.0.1',
      'echo',
    );
    const [abuser, regular] = await sockets(['127.0.0.2', '127.0.0.4']);
    const spoofers = shuffled(await sockets(addresses(30, 500)), 3);
    const requests = 100;
    let sent = 0;
    const started = performance.now();
    let last = started;
    for (let i = 0; i < requests && performance.now() - started < 5000; i++) {
      const round = performance.now();
      await (abuser as UdpSocket).send(`abuser ${i}`, port, '127.0.0.1');
      last = performance.now();
      for (let k = 0; k < 20; k++)
        await (spoofers[(i * 20 + k) % spoofers.length] as UdpSocket).send('spoofed', port, '127.0.0.1');
      sent += 21;
      // And a client at half its rate, there before the flood: what it gets is reported.
      if (i % 20 === 0) {
        await (regular as UdpSocket).send(`regular ${i}`, port, '127.0.0.1');
        sent++;
      }
      await pace(round, 10);
    }
    await until(() => running.stderr.includes(`received=${sent} `), 3000);
    const r = await stop(running);
    const c = r.last;
    // Its burst, and the rate over the time it kept asking (one more for the clocks' edges).
    const span = (last - started) / 1000;
    const got = (abuser as UdpSocket).packetsReceived;
    expect(got).toBeGreaterThanOrEqual(10);
    expect(got).toBeLessThanOrEqual(10 + Math.ceil(10 * span) + 1);
    // Bounded, and what was not answered is counted, the new sources refused among them.
    expect(Math.max(...counterValues(r.stderr, 'sources'))).toBeLessThanOrEqual(16);
    expect(c('received')).toBe(sent);
    expect(c('answered') + c('rate_limited') + c('reply_errors')).toBe(sent);
    expect(c('sources_full')).toBeGreaterThan(0);
    console.log(
      `echo heavy flood: abuser answered ${got} of ${requests} over ${span.toFixed(2)} s; client at 5/s answered ${(regular as UdpSocket).packetsReceived} of ${Math.ceil(requests / 20)}; answered ${c('answered')}, rate_limited ${c('rate_limited')}, sources_full ${c('sources_full')}`,
    );
  });
});
