/**
 * Network namespaces that hold only loopback, for tests that must not reach the network: inside
 * one, a name lookup fails at once (no route to any resolver) instead of leaving the machine.
 * Making one needs root and iproute2's `ip`; without them the test is skipped with the reason,
 * except in CI (`CI` set), which runs as root and must not skip silently.
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'vitest';

/** A namespace with `lo` up and nothing else. */
export interface Netns {
  name: string;
  /** Runs a command inside the namespace: pass as `prefix` to `start`, `startCli`, `runCli`. */
  prefix: readonly string[];
}

let created = 0;
// Set after the first failure, so later tests skip without trying again.
let unavailable: string | undefined;

function ip(args: string[]): string | undefined {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `'ip ${args.join(' ')}' could not run: ${r.error.message}`;
  if (r.status !== 0) return `'ip ${args.join(' ')}' failed: ${r.stderr.trim() || `exit ${r.status}`}`;
  return undefined;
}

/**
 * Creates a namespace named `udpkit-test-<pid>-<n>` with only `lo`, brought up, and deletes it
 * when the test ends, pass or fail. When namespaces cannot be made, skips the test through
 * `context` with the reason, or throws when `CI` is set.
 */
export function createNetns(context: TestContext): Netns {
  if (unavailable === undefined) {
    const name = `udpkit-test-${process.pid}-${++created}`;
    const failed = ip(['netns', 'add', name]);
    if (failed === undefined) {
      // The test's own hook: in a concurrent test, the global one may run when another ends.
      context.onTestFinished(() => {
        const left = ip(['netns', 'delete', name]);
        if (left !== undefined) throw new Error(left);
      });
      const down = ip(['-n', name, 'link', 'set', 'lo', 'up']);
      if (down !== undefined) throw new Error(down);
      return { name, prefix: ['ip', 'netns', 'exec', name] };
    }
    ip(['netns', 'delete', name]); // in case a half-made one was left
    unavailable = `cannot make a network namespace (needs root and iproute2): ${failed}`;
  }
  if (process.env.CI) throw new Error(unavailable);
  return context.skip(unavailable);
}

/** Adds an address (`10.199.7.3/24`, `fd00:199:7::99/64`) to a device of a namespace made here. */
export function addAddress(ns: Netns, cidr: string, device: string): void {
  const failed = ip([
    '-n',
    ns.name,
    'addr',
    'add',
    cidr,
    'dev',
    device,
    ...(cidr.includes(':') ? ['nodad'] : []),
  ]);
  if (failed !== undefined) throw new Error(failed);
}

/** Two namespaces joined by a veth pair, each with an address on 10.199.<n>.0/24 and fd00:199:<n>::/64, and fe80::1 / fe80::2. */
export interface LinkedNetns {
  a: Netns & { address: string; address6: string; device: string };
  b: Netns & { address: string; address6: string; device: string };
  /** The subnet's broadcast address. */
  broadcast: string;
}

let linked = 0;

/**
 * Creates two namespaces joined by a veth pair (`a` 10.199.n.1/24, `b` 10.199.n.2/24, both
 * up, with loopback): traffic between them never leaves the machine. Deleted when the test
 * ends; skipped or thrown as {@link createNetns} does when namespaces cannot be made.
 */
export function createLinkedNetns(context: TestContext): LinkedNetns {
  const a = createNetns(context);
  const b = createNetns(context);
  // From 1: fd00:199:0::1 would read back as fd00:199::1.
  const n = 1 + ((process.pid + ++linked) % 250);
  const steps = [
    ['link', 'add', 'veth-a', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'veth-b', 'netns', b.name],
    ['-n', a.name, 'addr', 'add', `10.199.${n}.1/24`, 'dev', 'veth-a'],
    ['-n', b.name, 'addr', 'add', `10.199.${n}.2/24`, 'dev', 'veth-b'],
    ['-n', a.name, 'addr', 'add', `fd00:199:${n}::1/64`, 'dev', 'veth-a', 'nodad'],
    ['-n', b.name, 'addr', 'add', `fd00:199:${n}::2/64`, 'dev', 'veth-b', 'nodad'],
    ['-n', a.name, 'addr', 'add', 'fe80::1/64', 'dev', 'veth-a', 'nodad'],
    ['-n', b.name, 'addr', 'add', 'fe80::2/64', 'dev', 'veth-b', 'nodad'],
    ['-n', a.name, 'link', 'set', 'veth-a', 'up'],
    ['-n', b.name, 'link', 'set', 'veth-b', 'up'],
  ];
  for (const step of steps) {
    const failed = ip(step);
    if (failed !== undefined) throw new Error(failed);
  }
  // Both ends report a carrier a moment after they are up: wait for it (2 s at most), since
  // an interface without one is not yet listed among the system's running interfaces.
  for (const [ns, dev] of [
    [a.name, 'veth-a'],
    [b.name, 'veth-b'],
  ] as const) {
    const deadline = Date.now() + 2000;
    for (;;) {
      const r = spawnSync('ip', ['-n', ns, 'link', 'show', 'dev', dev], { encoding: 'utf8', timeout: 2000 });
      if (r.stdout.includes('LOWER_UP')) break;
      if (Date.now() > deadline) throw new Error(`${dev} in ${ns} has no carrier after 2 s`);
      spawnSync('sleep', ['0.02']);
    }
  }
  return {
    a: { ...a, address: `10.199.${n}.1`, address6: `fd00:199:${n}::1`, device: 'veth-a' },
    b: { ...b, address: `10.199.${n}.2`, address6: `fd00:199:${n}::2`, device: 'veth-b' },
    broadcast: `10.199.${n}.255`,
  };
}
