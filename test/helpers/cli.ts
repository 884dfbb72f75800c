/**
 * Spawning the built CLI as a user would, with deadlines on everything.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { onTestFinished, type TestContext } from 'vitest';

/** The built entry point, as `bin` in package.json names it. */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/**
 * The options its `#!` line gives node (`#!/usr/bin/env -S node --max-semi-space-size=2`), so
 * that `node CLI`, as the tests run it with the node running them, runs as `udpkit` does.
 */
export const CLI_NODE_FLAGS: readonly string[] = (() => {
  try {
    const first = readFileSync(CLI, 'utf8').slice(0, 200).split('\n')[0] as string;
    return /^#!\S*env -S node( .*)?$/.exec(first)?.[1]?.trim().split(/\s+/) ?? [];
  } catch {
    return []; // not built yet: the test fails on the missing file itself
  }
})();

/** The outcome of a finished process. */
export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running process whose output is collected as it comes. */
export class Running {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  stdoutBytes: Buffer[] = [];
  readonly exited: Promise<Result>;

  constructor(child: ChildProcess, readStdout = true) {
    this.child = child;
    if (readStdout) this.readStdout();
    // Decoded across reads: a character split between two reads of the pipe stays one.
    const stderr = new StringDecoder('utf8');
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += stderr.write(d);
    });
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }),
      );
    });
  }

  /** Starts collecting stdout (done at once unless the process was started with it unread). */
  readStdout(): void {
    const stdout = new StringDecoder('utf8');
    this.child.stdout?.on('data', (d: Buffer) => {
      this.stdoutBytes.push(d);
      this.stdout += stdout.write(d);
    });
  }

  /** Resolves when `pattern` appears in the stream; rejects after `ms`. */
  async waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, ms = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this[stream].match(pattern);
      if (m) return m;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${pattern} on ${stream}; stdout=${JSON.stringify(this.stdout)} stderr=${JSON.stringify(this.stderr)}`,
        );
      }
      if (this.child.exitCode !== null) {
        throw new Error(
          `process exited (${this.child.exitCode}) before ${pattern}; stderr=${JSON.stringify(this.stderr)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits for exit, killing the process if it outlives `ms`. */
  async wait(ms = 10_000): Promise<Result> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** How to start a process. */
export interface StartOptions {
  input?: string | Buffer;
  uid?: number;
  /** false leaves stdout unread, so the pipe fills and the process's writes stall. */
  readStdout?: boolean;
  /** A command the process runs under, such as `ip netns exec NAME` (see netns.ts). */
  prefix?: readonly string[];
  /** Environment variables to add (`UDPKIT_NATIVE: '0'` runs on node:dgram). */
  env?: Record<string, string>;
  /** A descriptor for stdout (a named pipe the test holds) instead of a pipe read here. */
  stdout?: number;
  /**
   * The test the process belongs to: in a concurrent test it must be given, for the process
   * to be killed when its own test ends rather than when another does.
   */
  context?: TestContext;
}

/** Starts a process; it is killed when the test ends, pass or fail. */
export function start(command: string, args: string[], options: StartOptions = {}): Running {
  const [wrapper, ...wrapperArgs] = options.prefix ?? [];
  const child = spawn(wrapper ?? command, wrapper === undefined ? args : [...wrapperArgs, command, ...args], {
    stdio: ['pipe', options.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    ...(options.uid !== undefined && { uid: options.uid, gid: options.uid }),
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const running = new Running(child, options.readStdout ?? true);
  (options.context?.onTestFinished ?? onTestFinished)(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return running;
}

/** Starts the built CLI. */
export function startCli(args: string[], options: StartOptions = {}): Running {
  return start(process.execPath, [...CLI_NODE_FLAGS, CLI, ...args], options);
}

/** Runs the built CLI to completion (killed after `ms`). */
export function runCli(
  args: string[],
  options: {
    input?: string | Buffer;
    ms?: number;
    prefix?: readonly string[];
    env?: Record<string, string>;
    context?: TestContext;
  } = {},
): Promise<Result> {
  const running = startCli(args, {
    input: options.input ?? '',
    ...(options.prefix !== undefined && { prefix: options.prefix }),
    ...(options.env !== undefined && { env: options.env }),
    ...(options.context !== undefined && { context: options.context }),
  });
  return running.wait(options.ms ?? 10_000);
}

/**
 * Starts `udpkit listen` (or `echo`) on port 0 and resolves once it is bound, with the port it got (read
 * back from its "Listening on" line).
 */
export async function startListener(
  args: string[] = [],
  host = '127.0.0.1',
  verb: 'listen' | 'echo' = 'listen',
  options: StartOptions = {},
): Promise<{ running: Running; port: number }> {
  const running = startCli([verb, host, '0', ...args], options);
  const m = await running.waitFor('stderr', /Listening on .*:(\d+)\n/);
  return { running, port: Number(m[1]) };
}

/**
 * The UDP ports process `pid` has bound, read from /proc: its socket inodes matched against
 * /proc/net/udp and udp6. For peers that bind port 0 without saying which port they got.
 */
export function udpPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // the descriptor closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9] as string))
        ports.push(Number.parseInt((f[1] as string).split(':')[1] as string, 16));
    }
  }
  return ports;
}

/** Waits until process `pid` has bound a UDP port, and returns it. */
export async function waitForUdpPort(pid: number, ms = 5000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const [port] = udpPortsOf(pid);
    if (port !== undefined) return port;
    if (Date.now() > deadline) throw new Error(`process ${pid} bound no UDP port within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
