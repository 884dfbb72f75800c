/**
 * `udpkit proxy` as a user runs it: the built CLI between a client and an echo server of the
 * test's own, on loopback. Sends are bounded; the proxy ends on --idle-timeout or a signal.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openUdpSocket, request, type UdpSocket } from '../../src/lib/index.js';
import { runCli, startCli } from '../helpers/cli.js';
import { needs } from '../helpers/net.js';
import { createNetns } from '../helpers/netns.js';
import { echoServer, startProxy } from '../helpers/proxy.js';
import { until } from '../helpers/time.js';

/** Sends `n` datagrams numbered from 0, 100 at a time, each hundred answered or lost before the next. */
async function sendThrough(port: number, n: number): Promise<UdpSocket> {
  const c = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  onTestFinished(() => c.close());
  for (let i = 0; i < n; i += 100) {
    await c.sendEach(
      Array.from({ length: 100 }, (_, k) => `${i + k}`),
      port,
      '127.0.0.1',
    );
    // Echoes take a few ms; the losses never come: wait for the flow to be quiet.
    const before = c.packetsReceived;
    await until(() => c.packetsReceived > before, 2000).catch(() => {});
  }
  return c;
}

/** A client socket on loopback, closed when the test ends. */
async function client(): Promise<UdpSocket> {
  const c = await openUdpSocket({ address: '127.0.0.1', port: 0 });
  onTestFinished(() => c.close());
  return c;
}

const tmp = (name: string) => join(tmpdir(), `udpkit-proxy-${process.pid}-${name}`);

describe('udpkit proxy', () => {
  it('--delay 20ms both ways makes a round trip of about 40 ms, and the summary says so', async () => {
    const server = await echoServer();
    const { running, port } = await startProxy(server.address().port, [
      '--delay',
      '20ms',
      '--idle-timeout',
      '300ms',
    ]);
    const c = await client();
    const rtts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await request(c, `${i}`, { port, host: '127.0.0.1', timeout: 2000 });
      rtts.push(performance.now() - t);
    }
    rtts.sort((a, b) => a - b);
    // Both delays, and not twice them: a machine busy with other tests adds some ms to a few.
    expect(rtts[0]).toBeGreaterThanOrEqual(40);
    expect(rtts[5]).toBeLessThan(80);
    const r = await running.wait();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /udpkit proxy: up: received 10, forwarded 10, delayed 10 \(mean 2\d\.\d ms, p99 2\d\.\d ms\); down: received 10, forwarded 10, delayed 10 \(mean 2\d\.\d ms, p99 2\d\.\d ms\); flows opened 1 \(seed \d+\)\n$/,
    );
  });

  it('loses at --loss, the log counts what the summary counts, and the same seed writes the same log', async () => {
    const server = await echoServer();
    const logs: string[] = [];
    const n = 2000;
    for (const run of [0, 1]) {
      const log = tmp(`loss-${run}.ndjson`);
      onTestFinished(() => void import('node:fs').then((fs) => fs.rmSync(log, { force: true })));
      const { running, port, seed } = await startProxy(server.address().port, [
        ...[
          '--loss',
          '10%',
          '--up',
          'duplicate 1% corrupt 1%',
          '--seed',
          '1234',
          '--log',
          log,
          '--idle-timeout',
          '400ms',
        ],
      ]);
      expect(seed).toBe(1234);
      await sendThrough(port, n);
      const r = await running.wait();
      expect(r.code).toBe(0);
      const events = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const up = events.filter((e) => e.dir === 'up');
      const lost = up.filter((e) => e.action === 'drop' && e.cause === 'loss').length;
      expect(up.filter((e) => !e.copy).length).toBe(n);
      // 10 % of the originals and of the copies (each makes its own pass).
      const copies = up.filter((e) => e.copy).length;
      const sd = Math.sqrt((n + copies) * 0.1 * 0.9);
      expect(Math.abs(lost - (n + copies) * 0.1)).toBeLessThanOrEqual(3.29 * sd);
      const summary =
        /up: received (\d+), forwarded (\d+), dropped (\d+) \(loss (\d+)\), duplicated (\d+)/.exec(r.stderr);
      expect(summary?.slice(1).map(Number)).toEqual([
        n,
        up.filter((e) => e.action === 'pass').length,
        lost,
        lost,
        copies,
      ]);
      logs.push(JSON.stringify(up.map(({ t, ...rest }) => rest)));
    }
    expect(logs[0]).toBe(logs[1]);
  });

  it('--rate 1mbit delivers 1 Mbit/s within 1 %, measured where it arrives', async () => {
    const sink = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    onTestFinished(() => sink.close());
    const arrivals: number[] = [];
    sink.consume((m) => void arrivals.push(m.receivedAt));
    const { running, port } = await startProxy(sink.address().port, [
      '--rate',
      '1mbit',
      '--idle-timeout',
      '300ms',
    ]);
    const c = await client();
    // 250 datagrams of 1000 bytes at once: the link takes 8.224 ms for each (1028 bytes).
    const n = 250;
    for (let i = 0; i < n; i += 50)
      await c.sendEach(
        Array.from({ length: 50 }, () => Buffer.alloc(1000)),
        port,
        '127.0.0.1',
      );
    await until(() => arrivals.length === n, 5000);
    const seconds = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
    const bits = (n - 1) * 1028 * 8;
    expect(Math.abs(bits / seconds / 1e6 - 1)).toBeLessThan(0.01);
    expect((await running.wait()).code).toBe(0);
  });

  it('--match impairs only the clients it names; the others pass clean', async () => {
    const server = await echoServer();
    const { running, port } = await startProxy(server.address().port, [
      '--loss',
      '100%',
      '--match',
      '127.0.0.2/32',
      '--idle-timeout',
      '300ms',
    ]);
    const named = await openUdpSocket({ address: '127.0.0.2', port: 0 });
    const other = await openUdpSocket({ address: '127.0.0.3', port: 0 });
    onTestFinished(() => Promise.all([named.close(), other.close()]).then(() => {}));
    await named.sendEach(['a', 'b'], port, '127.0.0.1');
    await other.sendEach(['c', 'd'], port, '127.0.0.1');
    await until(() => other.packetsReceived === 2);
    const r = await running.wait();
    expect(named.packetsReceived).toBe(0);
    expect(r.stderr).toMatch(/up: received 4, forwarded 2, dropped 2 \(loss 2\)/);
  });

  it('--scenario: a phase with the link down drops everything, then the next phase relays', async () => {
    const server = await echoServer();
    const file = tmp('scenario.json');
    const log = tmp('scenario.ndjson');
    const fs = await import('node:fs');
    fs.writeFileSync(
      file,
      JSON.stringify({
        phases: [
          { name: 'outage', duration: '400ms', link: 'down' },
          { duration: '60s', delay: '5ms' },
        ],
      }),
    );
    onTestFinished(() => {
      fs.rmSync(file, { force: true });
      fs.rmSync(log, { force: true });
    });
    const { running, port } = await startProxy(server.address().port, [
      '--scenario',
      file,
      '--log',
      log,
      '--idle-timeout',
      '300ms',
    ]);
    const c = await client();
    // One every 50 ms until one comes back (at most 40: 2 s): the outage lasts 400 ms.
    for (let i = 0; i < 40 && c.packetsReceived === 0; i++) {
      await c.send(`${i}`, port, '127.0.0.1');
      await until(() => c.packetsReceived > 0, 50).catch(() => {});
    }
    expect(c.packetsReceived).toBe(1);
    const r = await running.wait();
    const events = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const up = events.filter((e) => e.dir === 'up');
    const dropped = up.filter((e) => e.action === 'drop');
    expect(dropped.length).toBeGreaterThanOrEqual(4);
    expect(dropped.every((e) => e.cause === 'link' && e.phase === 1)).toBe(true);
    expect(up.filter((e) => e.action === 'pass').every((e) => e.phase === 2 && e.delay === 5)).toBe(true);
    expect(r.stderr).toContain(`dropped ${dropped.length} (link ${dropped.length})`);
  });

  it('--pcap writes both legs both ways as a pcap that tcpdump reads, checksums right', async () => {
    const server = await echoServer();
    const file = tmp('legs.pcap');
    const fs = await import('node:fs');
    onTestFinished(() => fs.rmSync(file, { force: true }));
    const { running, port } = await startProxy(server.address().port, [
      '--pcap',
      file,
      '--idle-timeout',
      '300ms',
    ]);
    const c = await client();
    for (const word of ['hello', 'world']) await request(c, word, { port, host: '127.0.0.1', timeout: 2000 });
    expect((await running.wait()).code).toBe(0);
    const pcap = fs.readFileSync(file);
    expect([pcap.readUInt32LE(0), pcap.readUInt32LE(20)]).toEqual([0xa1b2c3d4, 101]);
    // Records: client -> proxy, proxy -> server, server -> proxy, proxy -> client, twice.
    const legs: string[] = [];
    for (let o = 24; o < pcap.length; ) {
      const length = pcap.readUInt32LE(o + 8);
      const ip = pcap.subarray(o + 16, o + 16 + length);
      const udp = ip.subarray(((ip[0] as number) & 0x0f) * 4);
      legs.push(`${udp.readUInt16BE(0)}>${udp.readUInt16BE(2)}:${udp.subarray(8)}`);
      o += 16 + length;
    }
    const [me, server_] = [c.address().port, server.address().port];
    const up = legs[1]?.split('>')[0] as string;
    expect(legs).toEqual([
      `${me}>${port}:hello`,
      `${up}>${server_}:hello`,
      `${server_}>${up}:hello`,
      `${port}>${me}:hello`,
      `${me}>${port}:world`,
      `${up}>${server_}:world`,
      `${server_}>${up}:world`,
      `${port}>${me}:world`,
    ]);
    if (needs('tcpdump')) {
      const out = execFileSync('tcpdump', ['-r', file, '-nn', '-vv'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      expect(out.match(/udp sum ok/g)).toHaveLength(8);
      expect(out).toContain(`127.0.0.1.${me} > 127.0.0.1.${port}: [udp sum ok] UDP, length 5`);
      expect(out).not.toMatch(/bad|wrong/i);
    }
  });

  it('a datagram the kernel refuses to send (a firewall rule) is one send error; those after it go on', async (context) => {
    if (!needs('nft')) return context.skip('needs nft (nftables)');
    // In a namespace of its own: an output rule there refuses the 5-byte datagram to the target
    // (sendmsg fails with EPERM), whether it leaves alone or in the middle of a batch.
    const ns = createNetns(context);
    const nft = (rule: string) => {
      const r = spawnSync('ip', ['netns', 'exec', ns.name, 'nft', rule], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`nft ${rule}: ${r.stderr}`);
    };
    nft('add table inet t');
    nft('add chain inet t out { type filter hook output priority 0 ; }');
    nft('add rule inet t out udp dport 7001 udp length 13 drop');
    const listener = startCli(['listen', '127.0.0.1', '7001', '--count', '5'], { prefix: ns.prefix });
    await listener.waitFor('stderr', /Listening on/);
    const proxy = startCli(['proxy', '--listen', '127.0.0.1:7000', '--target', '127.0.0.1:7001'], {
      prefix: ns.prefix,
    });
    await proxy.waitFor('stderr', /Proxying/);
    // Stopped once the listener has all it will get (an idle timeout could end it before a
    // sender slow to start on a busy machine has sent anything).
    const sent = await runCli(['send', '-q', '127.0.0.1', '7000'], {
      input: 'aaaa\nbbbbb\ncccc\ndddd\neeee\nffff\n',
      prefix: ns.prefix,
    });
    expect(sent.code).toBe(0);
    const heard = await listener.wait();
    expect(heard.stdout.match(/Received message: \w+/g)).toEqual([
      'Received message: aaaa',
      'Received message: cccc',
      'Received message: dddd',
      'Received message: eeee',
      'Received message: ffff',
    ]);
    proxy.child.kill('SIGINT');
    const r = await proxy.wait();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/up: received 6, forwarded 5, send errors 1;/);
  });

  it('an input it cannot read or an output it cannot write is exit 1, one line', async () => {
    for (const [args, message] of [
      [
        ['--scenario', '/nonexistent/s.json'],
        'udpkit proxy: cannot read --scenario /nonexistent/s.json: ENOENT',
      ],
      [['--trace-up', '/nonexistent/t'], 'udpkit proxy: cannot read the link trace /nonexistent/t: ENOENT'],
      [
        ['--log', '/nonexistent/dir/log'],
        'udpkit proxy: cannot write --log /nonexistent/dir/log: no such file or directory (ENOENT)',
      ],
    ] as const) {
      const r = await runCli(['proxy', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', ...args]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`${message}\n`);
    }
  });

  it('a log it cannot write (a full disk) stops it: the summary, then the file named, exit 1', async () => {
    const server = await echoServer();
    const { running, port } = await startProxy(server.address().port, ['--log', '/dev/full']);
    const c = await client();
    await c.send('x', port, '127.0.0.1');
    const r = await running.wait();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /udpkit proxy: up: received 1, .*\nudpkit proxy: cannot write --log \/dev\/full: no space left on device \(ENOSPC\)\n$/,
    );
  });

  it('Ctrl-C prints the summary and exits 130', async () => {
    const server = await echoServer();
    const { running, port } = await startProxy(server.address().port, [
      '--up',
      'delay 10s',
      '--stats-interval',
      '20ms',
    ]);
    const c = await client();
    await c.send('held', port, '127.0.0.1');
    // Taken and held before the signal: a --stats line says so.
    await running.waitFor('stderr', /up_received=1 .*up_pending=1 /);
    running.child.kill('SIGINT');
    const r = await running.wait();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(
      /udpkit proxy: up_received=1 up_forwarded=0 up_pending=0 .*up_abandoned=1 .*flows_opened=1\n$/,
    );
  });

  it.each([
    [['--listen', '127.0.0.1:0'], '--target is required: host:port'],
    [['--target', '127.0.0.1:9'], '--listen is required: host:port'],
    [['--listen', '127.0.0.1', '--target', '127.0.0.1:9'], "--listen '127.0.0.1' needs a port of 0-65535"],
    [['--loss', '120%'], "loss rate '120%' is not a percentage"],
    [['--loss', 'state'], 'loss state needs its first probability'],
    [['--burst', '4'], '--burst is the mean length of --loss bursts: give --loss'],
    [['--delay', '50'], "delay '50' is not a time with a unit"],
    [['--jitter', '5ms'], '--jitter varies --delay: give --delay'],
    [
      ['--delay', '5ms', '--jitter', '1ms', '--distribution', 'cauchy'],
      "distribution 'cauchy' is not one of uniform, normal, pareto, paretonormal",
    ],
    [['--reorder', '5%'], '--reorder sends some datagrams ahead of delayed ones: give --delay too'],
    [['--delay', '5ms', '--gap', '5'], '--gap applies to --reorder: give --reorder'],
    [['--rate', 'fast'], "rate 'fast' is not a rate"],
    [['--up', 'jitterbug 5ms'], "--up: 'jitterbug' is not an impairment"],
    [['--down', 'loss'], "--down: 'loss' needs a value"],
    [['--seed', '-1'], "seed '-1' is not a whole number"],
    [['--match', ':0-70000'], "--match ':0-70000' is not a port range"],
    [['--slot', 'packets 4'], "slot min 'packets' is not a time with a unit"],
    [['--slot', '20ms 10ms'], "slot '20ms 10ms': max is less than min"],
    [['--up', 'slot distribution normal 10ms'], "'distribution' takes a name, a delay and a jitter"],
    [['--listen', ':0', '--target', '127.0.0.1:0'], "--target '127.0.0.1:0' needs a port of 1-65535"],
    [
      ['--loss', '90%', '--burst', '2'],
      '--loss 90% --burst 2: bursts of 2 on average allow at most 66.7% loss',
    ],
    [['--match', '10.0.0.0/33'], '--match: '],
    [['--listen', ':0', '--target', '1.2.3:9'], "--target: '1.2.3' is not a valid IPv4 address"],
    [['--listen', ':0', '--target', '0x7f000001:9'], "'0x7f000001' is not a valid IPv4 address"],
    [
      ['--listen', '127.0.0.1:9000', '--target', '127.0.0.1:9000'],
      '--target 127.0.0.1:9000 is where the proxy listens: it would relay to itself',
    ],
    [['--listen', ':9000', '--target', '127.0.0.1:9000'], 'is where the proxy listens'],
    [['--mtu', '20'], 'mtu 20 leaves no room for a payload'],
    [['--packet-overhead', '14'], '--packet-overhead counts towards --rate and --slot bytes'],
  ])('refuses %j with one line and exit 2', async (args, message) => {
    const full =
      args.includes('--listen') || args.includes('--target')
        ? args
        : ['--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', ...args];
    const r = await runCli(['proxy', ...full]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
