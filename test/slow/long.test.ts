/**
 * Long runs: `proxy` and `bench server` serve ten minutes of mixed traffic side by side, and
 * their memory stays flat: the resident set at the end within 10 % of what it was after the
 * first minute. `npm run test:slow`; LONG_RUN_MS shortens the run for a trial.
 */
import { describe, expect, it } from 'vitest';
import { openUdpSocket, type UdpSocket } from '../../src/lib/index.js';
import { type Running, startCli } from '../helpers/cli.js';
import { BenchShapes, Payloads, random } from '../helpers/fuzz.js';
import { memory, parseCounters } from '../helpers/proc.js';
import { echoServer, startProxy } from '../helpers/proxy.js';

const RUN_MS = Number(process.env.LONG_RUN_MS ?? 600_000);
const MB = 1024 * 1024;

/** Samples a process's resident set once a second for as long as it runs. */
function sampler(running: Running): { samples: [number, number][]; stop: () => void } {
  const t0 = Date.now();
  const samples: [number, number][] = [];
  const timer = setInterval(() => {
    const now = memory(running.child.pid as number, 'VmRSS');
    if (now !== undefined) samples.push([Date.now() - t0, now]);
  }, 1000);
  return { samples, stop: () => clearInterval(timer) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * The resident set after the first minute (the median of the samples from 50 to 70 s) and at
 * the end (the median of the last 20 s), and one figure a minute for the report.
 */
function flatness(
  samples: [number, number][],
  runMs: number,
): { first: number; end: number; perMinute: string } {
  const minute = Math.min(60_000, runMs / 4);
  const first = median(
    samples.filter(([t]) => t >= minute - 10_000 && t <= minute + 10_000).map(([, r]) => r),
  );
  const end = median(samples.filter(([t]) => t >= runMs - 20_000).map(([, r]) => r));
  const perMinute = samples
    .filter(
      ([t], i) =>
        i === 0 || Math.floor(t / 60_000) !== Math.floor((samples[i - 1] as [number, number])[0] / 60_000),
    )
    .map(([t, r]) => `${Math.round(t / 1000)}s ${(r / MB).toFixed(1)}`)
    .join(', ');
  return { first, end, perMinute };
}

// Side by side: each test hands its processes its own context, so that one test's end never
// kills the other's (a global hook in a concurrent test may run at another's end).
describe.concurrent('long runs', () => {
  it(`proxy: ${RUN_MS / 1000} s of churning clients through every impairment, memory flat`, async (context) => {
    const target = await echoServer({ recvBufferSize: 4 << 20, context });
    const { running: proxy, port } = await startProxy(
      target.address().port,
      [
        '--loss',
        '1%',
        '--delay',
        '2ms',
        '--jitter',
        '1ms',
        '--duplicate',
        '1%',
        '--reorder',
        '5%',
        '--corrupt',
        '0.5%',
        '--truncate',
        '0.5%',
        '--max-flows',
        '64',
        '--flow-idle-timeout',
        '2s',
        '--log',
        '/dev/null',
        '--stats-interval',
        '10s',
        '--seed',
        '7',
      ],
      { context },
    );
    const rssSamples = sampler(proxy);
    const r = random(11);
    const payloads = new Payloads(12, 0.001);
    // 40 clients on addresses across 127.0.0.0/8; every 5 s ten of them are replaced by new
    // ones (new flows; the old ones idle out after 2 s).
    const open = () =>
      openUdpSocket({
        address: `127.${1 + Math.floor(r() * 250)}.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 250)}`,
        port: 0,
      });
    let answers = 0;
    let sent = 0;
    let clients: UdpSocket[] = [];
    const add = async () => {
      const c = await open();
      c.consume(() => {
        answers++;
      });
      clients.push(c);
    };
    for (let i = 0; i < 40; i++) await add();
    const t0 = Date.now();
    let lastChurn = t0;
    // Every 100 ms a burst of 20 from one client: about 200 datagrams a second, sizes of every kind.
    while (Date.now() - t0 < RUN_MS) {
      const c = clients[Math.floor(r() * clients.length)] as UdpSocket;
      for (let k = 0; k < 20; k++) {
        const p = payloads.next();
        await c.send(p.length > 9000 ? p.subarray(0, 9000) : p, port);
        sent++;
      }
      if (Date.now() - lastChurn >= 5000) {
        lastChurn = Date.now();
        const gone = clients.slice(0, 10);
        clients = clients.slice(10);
        for (const g of gone) await g.close();
        for (let i = 0; i < 10; i++) await add();
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    rssSamples.stop();
    proxy.child.kill('SIGINT');
    const done = await proxy.wait(20_000);
    for (const c of clients) await c.close();
    await target.close();
    const f = flatness(rssSamples.samples, RUN_MS);
    const c = parseCounters(done.stderr.trimEnd().split('\n').at(-1) as string);
    console.log(
      `long proxy: ${sent} sent, ${answers} answers, flows opened ${c.flows_opened}, RSS after the first minute ${(f.first / MB).toFixed(1)} MB, at the end ${(f.end / MB).toFixed(1)} MB (${f.perMinute})`,
    );
    expect(done.code, `${done.signal} ${done.stderr}`).toBe(130);
    expect(c.up_received).toBe(sent - (c.up_drops_kernel ?? 0));
    const n = (key: string) => c[key] ?? 0;
    for (const dir of ['up', 'down']) {
      const dropped = Object.entries(c)
        .filter(([k]) => k.startsWith(`${dir}_drop_`))
        .reduce((a, [, v]) => a + v, 0);
      expect(n(`${dir}_received`) + n(`${dir}_duplicated`), dir).toBe(
        n(`${dir}_forwarded`) +
          dropped +
          n(`${dir}_pending`) +
          n(`${dir}_send_errors`) +
          n(`${dir}_abandoned`),
      );
    }
    expect(c.flows_opened).toBeGreaterThan(RUN_MS / 5000);
    expect(c.flows_open).toBeLessThanOrEqual(64);
    expect(answers).toBeGreaterThan(sent * 0.9);
    expect(f.end).toBeLessThanOrEqual(f.first * 1.1);
  });

  it(`bench server: ${RUN_MS / 1000} s of runs of every mode two at a time, and junk, memory flat`, async (context) => {
    const server = startCli(['bench', 'server', '127.0.0.1', '0', '--json'], { context });
    const port = Number((await server.waitFor('stderr', /Bench server on 127\.0\.0\.1:(\d+)\n/))[1]);
    const rssSamples = sampler(server);
    const modes = [
      ['--rate', '5k', '--size-dist', 'imix', '-t', '5s'],
      ['--mode', 'pingpong', '-t', '5s'],
      ['-R', '--rate', '2k', '-t', '5s'],
      ['--isochronous', '50:1200', '-t', '5s'],
      ['--count', '20000', '--rate', '10k', '--size', '1400', '-i', '100ms'],
      ['--bitrate', '50M', '-t', '3s', '--omit', '1s'],
    ];
    const r = random(21);
    const t0 = Date.now();
    let runs = 0;
    const failures: string[] = [];
    const lane = async () => {
      while (Date.now() - t0 < RUN_MS - 8000) {
        const args = modes[Math.floor(r() * modes.length)] as string[];
        const done = await startCli(['bench', 'client', '127.0.0.1', String(port), ...args, '--json'], {
          context,
        }).wait(60_000);
        runs++;
        if (done.code !== 0) failures.push(`${args.join(' ')}: exit ${done.code}: ${done.stderr}`);
      }
    };
    // Junk beside the runs, about 100 a second: every datagram of it is foreign or garbled.
    const junk = async () => {
      const socket = await openUdpSocket({ address: '127.0.0.1', port: 0 });
      const shapes = new BenchShapes(22, 1, 2);
      let n = 0;
      while (Date.now() - t0 < RUN_MS - 8000) {
        for (let k = 0; k < 10; k++, n++) await socket.send(shapes.next()[0], port);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await socket.close();
      return n;
    };
    const [, , junkSent] = await Promise.all([lane(), lane(), junk()]);
    rssSamples.stop();
    server.child.kill('SIGINT');
    const done = await server.wait(20_000);
    const f = flatness(rssSamples.samples, RUN_MS);
    const m = /foreign (\d+), garbled (\d+)\n$/.exec(done.stderr);
    console.log(
      `long bench server: ${runs} runs, ${junkSent} junk datagrams (${m?.[0].trim()}), RSS after the first minute ${(f.first / MB).toFixed(1)} MB, at the end ${(f.end / MB).toFixed(1)} MB (${f.perMinute})`,
    );
    expect(done.code, done.stderr).toBe(130);
    expect(failures).toEqual([]);
    expect(runs).toBeGreaterThan(RUN_MS / 10_000);
    expect(Number(m?.[1]) + Number(m?.[2])).toBe(junkSent);
    expect(f.end).toBeLessThanOrEqual(f.first * 1.1);
  });
});
