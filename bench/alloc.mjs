// Bytes the JavaScript heap allocates per send call that the kernel takes at once, measured
// with V8's sampling heap profiler (objects collected since included):
//   node bench/alloc.mjs        after `npm run build`
// Sends 64 datagrams of 64 bytes per call (sendPacked) to a port nobody reads on loopback.
import { Session } from 'node:inspector/promises';
import { createSequencedBatch, openUdpSocket } from '../dist/lib/index.js';

const session = new Session();
session.connect();
const rx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
rx.pause();
const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
const port = rx.address().port;
const buf = createSequencedBatch(64, 64);
const lengths = new Uint32Array(64).fill(64);
const calls = 20_000;
for (let i = 0; i < 2000; i++) await tx.sendPacked(buf, lengths, 5, port);
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 256,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
for (let i = 0; i < calls; i++) await tx.sendPacked(buf, lengths, 5, port);
const { profile } = await session.post('HeapProfiler.stopSampling');
let total = 0;
const walk = (node) => {
  total += node.selfSize;
  for (const child of node.children) walk(child);
};
walk(profile.head);
console.log(JSON.stringify({ transport: tx.transport, bytesPerCall: Math.round(total / calls) }));
await Promise.all([tx.close(), rx.close()]);
