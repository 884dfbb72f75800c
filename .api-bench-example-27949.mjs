import { runBench, startBenchServer } from 'udpkit';

const server = await startBenchServer({ address: '127.0.0.1' });
const r = await runBench({ host: '127.0.0.1', port: server.address().port, rate: 10_000, count: 2000, graceMs: 200 });
console.log(r.receiver.figures.sent, r.receiver.figures.lost);
await server.close();
