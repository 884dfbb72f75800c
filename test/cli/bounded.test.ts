/**
 * Flood behaviour that a user sees: counters on stderr, and bounded memory with counted drops
 * when stdout stops being read. Small and quick: counts and limits, not timings.
 */
import { expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { bound, sendFrom } from '../helpers/net.js';
import { lastCounters, peakRss } from '../helpers/proc.js';

it('--stats prints counters while running and at exit', async () => {
  const running = startCli(['listen', '127.0.0.1', '0', '--stats-interval', '100ms', '--count', '2']);
  const port = Number((await running.waitFor('stderr', /Listening on .*:(\d+)\n/))[1]);
  await running.waitFor('stderr', /udpkit listen: t=\d+\.\ds received=0 bytes=0 printed=0 pending=0 /);
  await sendFrom(port, ['ab', 'cde']);
  const r = await running.wait();
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(
    /\nudpkit listen: received=2 bytes=5 printed=2 pending=0 drops_queue=0 drops_output=0 drops_kernel=0 rcvbuf=\d+\n$/,
  );
});

it('holds memory bounded and counts what it could not print while stdout is stalled, then resumes', async () => {
  const running = startCli(['listen', '127.0.0.1', '0', '--stats-interval', '100ms', '--rcvbuf', '4M'], {
    readStdout: false,
  });
  const port = Number((await running.waitFor('stderr', /Listening on .*:(\d+)\n/))[1]);
  const pid = running.child.pid as number;
  // About 24 MB of output into a pipe nobody reads: more than the 8 MiB udpkit may hold.
  const client = await bound();
  const size = 1000;
  const perRound = 200;
  const payload = Buffer.alloc(size * perRound, 0x61);
  const lengths = new Uint32Array(perRound).fill(size);
  for (let round = 0; round < 120; round++) {
    await client.sendPacked(payload, lengths, perRound, port);
    await new Promise((r) => setImmediate(r));
  }
  // Past what udpkit holds, datagrams wait in the kernel's buffer, which drops and counts the rest.
  await running.waitFor('stderr', /drops_kernel=[1-9]/, 10_000);
  expect(peakRss(pid)).toBeLessThan(100 * 1024 * 1024);

  // The reader comes back: output flows again, new datagrams included.
  running.readStdout();
  for (let i = 0; i < 100 && !running.stdout.includes('marker-after-stall'); i++) {
    await client.send('marker-after-stall', port);
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(running.stdout).toContain('Received message: marker-after-stall from 127.0.0.1:');
  running.child.kill('SIGINT');
  const r = await running.wait();
  expect(r.code).toBe(130);
  const final = lastCounters(r.stderr, 'received', 'printed', 'drops_queue', 'drops_output', 'drops_kernel');
  // Every datagram the socket took was printed: reception paused while stdout was full, so
  // the overflow waited in the kernel (and past its buffer, the kernel dropped and said so).
  expect(final.printed + final.drops_queue + final.drops_output).toBe(final.received);
  expect(final.drops_output).toBe(0);
  expect(final.drops_kernel).toBeGreaterThan(0);
});
