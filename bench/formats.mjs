// Nanoseconds per datagram for each output format, on the built library.
// usage: node bench/formats.mjs   (after npm run build)
import { createFormatter } from '../dist/lib/index.js';

const from = { address: '127.0.0.1', port: 54321, family: 'IPv4' };
function payload(size) {
  // Like the C blaster: an 8-byte big-endian sequence number, then a-z filler.
  const b = Buffer.alloc(size);
  for (let i = 8; i < size; i++) b[i] = 97 + ((i - 8) % 26);
  b.writeBigUInt64BE(123456n, 0);
  return b;
}
for (const size of [64, 1024]) {
  const msgs = Array.from({ length: 1000 }, (_, i) => ({
    data: payload(size),
    from,
    receivedAt: Date.now() + i * 0.001,
  }));
  const row = [`${size}B`];
  for (const format of ['text', 'json', 'hex', 'base64', 'raw']) {
    const f = createFormatter(format, {});
    let sink = 0;
    for (let i = 0; i < 20000; i++) sink += f(msgs[i % 1000]).length; // warm up
    const n = 200000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += f(msgs[i % 1000]).length;
    const ns = Number(process.hrtime.bigint() - t0) / n;
    row.push(`${format}=${ns.toFixed(0)}ns`);
    if (sink < 0) console.log(sink);
  }
  console.log(row.join(' '));
}
