/**
 * `bench server --workers N`: N servers in N threads on one port (SO_REUSEPORT). A client
 * sends its control and data from one socket, so the kernel gives its whole session to one
 * of them; their lines are written here, whole, and their counts added up at the end.
 */
import { formatEndpoint } from '../../lib/index.js';
import type { CliIO } from '../io.js';
import { EXIT_OK } from '../io.js';
import { outputFailure } from '../stdout.js';
import { WorkerGroup } from './group.js';
import type { BenchWorkerData } from './protocol.js';

/** Runs the servers until Ctrl-C or a failed stdout; resolves to the exit status. */
export async function runBenchWorkers(
  where: { host: string; port: number },
  flags: { json?: boolean; quiet?: boolean; workers: number },
  io: CliIO,
): Promise<number> {
  const n = flags.workers;
  let outputError: Error | undefined;
  const data = (index: number): BenchWorkerData => ({
    udpkit: 'bench-server',
    index,
    host: where.host,
    json: flags.json === true,
  });
  const group = new WorkerGroup(n, data, (m, member) => {
    if (m.type === 'lines') io.stdout.write(m.text);
    else if (m.type === 'done') member.final = m.counters;
  });
  const stop = () => group.stop();
  io.signal.addEventListener('abort', stop, { once: true });
  // A reader gone (`| head -1`) ends it quietly.
  io.stdout.once('error', (err: Error) => {
    outputError = err;
    group.stop();
  });
  const bound = io.signal.aborted ? undefined : await group.bind(where.port);
  if (bound !== undefined && !flags.quiet) {
    io.stderr.write(`Bench server on ${formatEndpoint(bound.address, bound.port)} (${n} workers)\n`);
  }
  if (bound === undefined) group.stop();
  await group.exited();
  io.signal.removeEventListener('abort', stop);
  if (group.failure) throw group.failure;
  const total = (name: string) => group.members.reduce((sum, m) => sum + (m.final?.[name] ?? 0), 0);
  io.stderr.write(`udpkit bench server: foreign ${total('foreign')}, garbled ${total('garbled')}\n`);
  // What was written reaches a pipe before the process exits.
  await new Promise<void>((resolve) => io.stdout.write('', () => resolve()));
  const failure = outputFailure(outputError);
  if (failure) throw failure;
  return EXIT_OK;
}
