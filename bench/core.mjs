// The socket layer's own figures, in one process each, printed as one JSON object:
//   node bench/core.mjs loop     event-loop delay while pacing 50k/s, and at 500/s (the floor),
//                                three runs of each, medians
//   node bench/core.mjs sockets  RSS of 1000 receiving sockets, each sent 16 datagrams of 8000 B
// Run by bench/run.mjs after `npm run build`; also useful alone.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createSequencedBatch, numberDatagrams, openUdpSocket, Pacer } from '../dist/lib/index.js';

const what = process.argv[2];

/** Paces `rate` datagrams/s for `seconds` while a 1 ms histogram, a timer and a probe run. */
async function loop(rate, seconds) {
  // The receiver of the paced stream reads as listen does, coalesced.
  const rx = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 1 << 22, coalesce: true });
  const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  const echo = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  const probe = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  rx.consume(() => {});
  const datagramLate = [];
  echo.consume((m) => {
    datagramLate.push(performance.now() - m.data.readDoubleLE(0));
  });
  const timerLate = [];
  let stop = false;
  const timers = (async () => {
    while (!stop) {
      const at = performance.now() + 2;
      await new Promise((r) => setTimeout(r, 2));
      timerLate.push(performance.now() - at);
    }
  })();
  const ping = setInterval(() => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(performance.now());
    probe.send(b, echo.address().port);
  }, 3);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const pacer = new Pacer(rate);
  const buf = createSequencedBatch(64, 64);
  const lengths = new Uint32Array(64).fill(64);
  const total = rate * seconds;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (pacer.taken < total) {
    const first = pacer.taken;
    const n = await pacer.take(Math.min(64, total - first));
    numberDatagrams(buf, 64, n, first);
    await tx.sendPacked(buf, lengths, n, rx.address().port);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  h.disable();
  stop = true;
  clearInterval(ping);
  await timers;
  await Promise.all([rx.close(), tx.close(), echo.close(), probe.close()]);
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];
  return {
    rate: (total * 1000) / wall,
    cpuShare: (cpu.user + cpu.system) / 1000 / wall,
    // Node's histogram holds the time between its 1 ms timer's runs (an idle loop's median is
    // ~1.1 ms): the delay is what exceeds the 1 ms.
    loopDelayP99Ms: h.percentile(99) / 1e6 - 1,
    timerLateP99Ms: q(timerLate, 0.99),
    datagramLateP50Ms: q(datagramLate, 0.5),
    datagramLateP99Ms: q(datagramLate, 0.99),
  };
}

async function sockets() {
  const socks = [];
  for (let i = 0; i < 1000; i++) {
    socks.push(await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 1 << 20 }));
  }
  const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  const payload = Buffer.alloc(8000, 1);
  const batch = socks.map((s) => ({ data: payload, port: s.address().port }));
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  let got = 0;
  for (const s of socks) s.consume(() => void got++);
  for (let k = 0; k < 16; k++) await tx.sendBatch(batch);
  const deadline = Date.now() + 10_000;
  while (got < 16_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const grew = process.memoryUsage().rss - before;
  await Promise.all([...socks.map((s) => s.close()), tx.close()]);
  return { transport: socks[0].transport, received: got, rssGrowthMB: grew / 1048576 };
}

if (what === 'loop') {
  // Three of each, interleaved; each figure is the median of its three (a shared machine's
  // noise moves single runs by a millisecond).
  const runs = { busy: [], idle: [] };
  for (let i = 0; i < 3; i++) {
    runs.busy.push(await loop(50_000, 2));
    runs.idle.push(await loop(500, 2));
  }
  const median = (list) =>
    Object.fromEntries(Object.keys(list[0]).map((k) => [k, list.map((r) => r[k]).sort((a, b) => a - b)[1]]));
  console.log(JSON.stringify({ busy: median(runs.busy), idle: median(runs.idle) }));
} else if (what === 'sockets') {
  console.log(JSON.stringify(await sockets()));
} else {
  console.error('usage: node bench/core.mjs loop|sockets');
  process.exit(2);
}
process.exit(0);
