// A counting receiver with UDP GRO, for the sender benchmarks (bench/gso.mjs): takes batches
// in place (no object per datagram) and, after `idle` ms of silence once something arrived,
// prints `received=N bytes=B drops=D` and exits. GRO lets a GSO sender's buffers arrive
// whole, so the receiver is not what limits the sender being measured.
//
//   node bench/gro-sink.mjs PORT [IDLE_MS]
import { openUdpSocket } from '../dist/lib/index.js';

const port = Number(process.argv[2]);
const idle = Number(process.argv[3] ?? 300);
const socket = await openUdpSocket({ address: '127.0.0.1', port, gro: true, recvBufferSize: 32 << 20 });
let received = 0;
let bytes = 0;
const first = new Promise((resolve) => {
  socket
    .consumeBatches((b) => {
      received += b.count;
      for (let i = 0; i < b.count; i++) bytes += b.length(i);
      return false; // the first batch: then the idle timeout counts from here
    })
    .then(resolve, resolve);
});
await first;
await socket
  .consumeBatches(
    (b) => {
      received += b.count;
      for (let i = 0; i < b.count; i++) bytes += b.length(i);
    },
    { idleTimeout: idle },
  )
  .catch(() => {});
const drops = socket.kernelDrops;
await socket.close();
console.log(`received=${received} bytes=${bytes} drops=${drops}`);
