#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * The udpkit command line. The only module that touches process.argv, process.exitCode and
 * signals: it parses, hands the command its streams and a stop signal, and turns the outcome
 * into an exit status (0 ok, 1 runtime failure, 2 usage error, 130 Ctrl-C, 143 SIGTERM).
 */
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread, workerData } from 'node:worker_threads';
import { UdpError } from '../lib/index.js';
import { UsageError } from './args.js';
import { Command, CommanderError } from './commander.js';
import { benchCommand } from './commands/bench.js';
import { echoCommand } from './commands/echo.js';
import { listenCommand } from './commands/listen.js';
import { proxyCommand } from './commands/proxy.js';
import { sendCommand } from './commands/send.js';
import { type CliIO, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.js';
import { outputFailure } from './stdout.js';
import { isBenchWorker, runBenchWorker } from './workers/bench-worker.js';
import { setWorkerEntry } from './workers/group.js';
import { isReceiverWorker, runReceiverWorker } from './workers/worker.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
/** A repeat of the first signal sooner than this is the same one, delivered twice. */
const SAME_SIGNAL_MS = 50;

/** One line for stderr: the first line of a message, without commander's "error: " prefix. */
function oneLine(message: string): string {
  return (message.split('\n').find((l) => l.trim() !== '') ?? message).replace(/^error: /, '').trim();
}

/**
 * The last `count` arguments of this process as raw bytes, from /proc (Linux): they line up
 * with process.argv's, whatever options Node itself was given. Undefined elsewhere.
 */
function commandLineBytes(count: number): Buffer[] | undefined {
  try {
    const raw = readFileSync('/proc/self/cmdline');
    const parts: Buffer[] = [];
    for (let start = 0; start < raw.length; ) {
      const end = raw.indexOf(0, start);
      parts.push(raw.subarray(start, end < 0 ? raw.length : end));
      start = end < 0 ? raw.length : end + 1;
    }
    return parts.length >= count ? parts.slice(parts.length - count) : undefined;
  } catch {
    return undefined;
  }
}

async function main(argv: string[]): Promise<number> {
  const stop = new AbortController();
  let stoppedBy: string | undefined;
  let stoppedAt = 0;
  const onSignal = (name: string) => {
    if (stoppedBy) {
      // The same signal again at once is one signal delivered twice: to the process and to its
      // group, as timeout(1) and some shells send it. A person's second Ctrl-C: leave now.
      if (name === stoppedBy && performance.now() - stoppedAt < SAME_SIGNAL_MS) return;
      process.exit(SIGNAL_EXIT[name] ?? EXIT_FAILURE);
    }
    stoppedBy = name;
    stoppedAt = performance.now();
    stop.abort(new Error(name));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // The standard streams are made on first use (each costs start-up time, and most runs need
  // one at most); a closed one must not crash us.
  const quiet = (stream: NodeJS.WriteStream) => {
    if (stream.listenerCount('error') === 0) stream.on('error', () => {});
    return stream;
  };
  const io: CliIO = {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return quiet(process.stdout);
    },
    get stderr() {
      return quiet(process.stderr);
    },
    signal: stop.signal,
    argv,
    get argvBytes() {
      return commandLineBytes(argv.length);
    },
  };
  // Help and version go to stdout synchronously; a full disk there is a failure too.
  let helpFailure: Error | undefined;
  const writeOut = (text: string) => {
    try {
      writeSync(1, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') helpFailure ??= err as Error;
    }
  };
  let exitCode = EXIT_OK;
  const setExit = (code: number) => {
    exitCode = code;
  };
  let commandName = '';
  const program = new Command('udpkit')
    .description('UDP networking: a listener, a sender, and more to come')
    .version(version, '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut,
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`udpkit${commandName ? ` ${commandName}` : ''}: ${oneLine(s)}\n`),
    })
    .hook('preAction', (_program, action) => {
      // `bench client`: the names from under the program down to the command that runs.
      const names: string[] = [];
      for (let c: Command | null = action; c !== null && c !== program; c = c.parent) names.unshift(c.name());
      commandName = names.join(' ');
    })
    .addHelpText(
      'after',
      `
Examples:
  udpkit listen                      print datagrams sent to 0.0.0.0:12345
  udpkit send Hello World UDP        send three datagrams to 127.0.0.1:12345
  udpkit echo 127.0.0.1 9000         answer each datagram with its payload
  udpkit proxy --listen 127.0.0.1:9000 --target 127.0.0.1:9001 --loss 5%
  udpkit listen --help               more on one command`,
    );
  // Each command, and each of its own (bench's server and client), says its errors as itself.
  const configure = (cmd: Command, name: string): Command => {
    cmd.exitOverride().configureOutput({
      writeOut,
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`udpkit ${name}: ${oneLine(s)} (see 'udpkit ${name} --help')\n`),
    });
    for (const sub of cmd.commands) configure(sub, `${name} ${sub.name()}`);
    return cmd;
  };
  for (const make of [listenCommand, sendCommand, echoCommand, proxyCommand, benchCommand]) {
    const cmd = make(io, setExit);
    program.addCommand(configure(cmd, cmd.name()));
  }

  if (argv.length === 0) {
    io.stderr.write(program.helpInformation());
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') {
        const failure = outputFailure(helpFailure);
        if (!failure) return EXIT_OK;
        io.stderr.write(`udpkit: ${failure.message}\n`);
        return EXIT_FAILURE;
      }
      return EXIT_USAGE; // commander has printed the one-line reason, or the help
    }
    const prefix = `udpkit${commandName ? ` ${commandName}` : ''}`;
    if (err instanceof UsageError) {
      io.stderr.write(`${prefix}: ${err.message} (see '${prefix} --help')\n`);
      return EXIT_USAGE;
    }
    if (err instanceof UdpError) {
      if (err.code === 'UDP_ERR_ABORTED' && stoppedBy) return SIGNAL_EXIT[stoppedBy] ?? EXIT_FAILURE;
      io.stderr.write(`${prefix}: ${err.message}\n`);
      if (process.env.UDPKIT_DEBUG) io.stderr.write(`${err.stack}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(`${prefix}: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.UDPKIT_DEBUG) io.stderr.write(`${(err as Error).stack}\n`);
    return EXIT_FAILURE;
  }
  return stoppedBy ? (SIGNAL_EXIT[stoppedBy] ?? EXIT_FAILURE) : exitCode;
}

// A worker of --workers: this module is its entry too, so that one bundle holds all.
if (!isMainThread && isReceiverWorker(workerData)) await runReceiverWorker(workerData);
else if (!isMainThread && isBenchWorker(workerData)) await runBenchWorker(workerData);
else {
  setWorkerEntry(import.meta.url);
  const code = await main(process.argv.slice(2));
  // Exit now: a write still blocked on a stalled stdout (on a pool thread) or a terminal's
  // stdin must not keep a finished command alive. stderr is written synchronously, so
  // nothing is lost.
  process.exit(code);
}
