import { describe, expect, it } from 'vitest';
import { runCli, startListener } from '../helpers/cli.js';
import { bound, receiveN } from '../helpers/net.js';

describe('udpkit echo', () => {
  it('answers each datagram with its own bytes, logs it as listen does, and sums up', async () => {
    const { running, port } = await startListener(['--count', '3'], '127.0.0.1', 'echo');
    const client = await bound();
    const payloads = [Buffer.from('hello'), Buffer.from([0, 0xff, 0x1b, 10]), Buffer.alloc(0)];
    for (const p of payloads) await client.send(p, port, '127.0.0.1');
    const replies = await receiveN(client, 3);
    expect(replies.map((r) => r.data)).toEqual(payloads);
    // From the address and port it was sent to.
    expect(replies.every((r) => r.from.address === '127.0.0.1' && r.from.port === port)).toBe(true);
    const r = await running.wait();
    expect(r.code).toBe(0);
    const c = client.address().port;
    expect(r.stdout).toBe(
      `Received message: hello from 127.0.0.1:${c}\n` +
        `Received message: \\x00\\xff\\x1b\\n from 127.0.0.1:${c}\n` +
        `Received message:  from 127.0.0.1:${c}\n`,
    );
    expect(r.stderr).toBe(
      `Listening on 127.0.0.1:${port}\nudpkit echo: received 3 datagrams (9 bytes), printed 3; answered 3\n`,
    );
  });

  it('answers each source at most --rate-limit times a second, and counts the rest', async () => {
    const { running, port } = await startListener(
      ['--rate-limit', '3', '--idle-timeout', '1', '--stats-interval', '60s'],
      '127.0.0.1',
      'echo',
    );
    const a = await bound('127.0.0.2');
    const b = await bound('127.0.0.3');
    for (let i = 0; i < 10; i++) {
      await a.send(`a${i}`, port, '127.0.0.1');
      await b.send(`b${i}`, port, '127.0.0.1');
    }
    const r = await running.wait();
    expect(r.code).toBe(0);
    // Ten in far less than a second: each source had its burst of 3, no more.
    expect(a.packetsReceived).toBe(3);
    expect(b.packetsReceived).toBe(3);
    const last = r.stderr.trim().split('\n').at(-1) as string;
    expect(last).toMatch(
      /^udpkit echo: received=20 bytes=40 printed=20 pending=0 drops_queue=0 drops_output=0 drops_kernel=0 answered=6 rate_limited=14 sources=2 sources_full=0 reply_errors=0 rcvbuf=\d+$/,
    );
  });

  it('answers no denied sender, and counts it', async () => {
    const { running, port } = await startListener(
      ['--deny', '127.0.0.3', '--allow', 'all', '--count', '1'],
      '127.0.0.1',
      'echo',
    );
    const stranger = await bound('127.0.0.3');
    const friend = await bound('127.0.0.2');
    await stranger.send('let me in', port, '127.0.0.1');
    await friend.send('hi', port, '127.0.0.1');
    expect((await receiveN(friend, 1))[0]?.data.toString()).toBe('hi');
    const r = await running.wait();
    expect(r.stderr).toContain(
      'received 2 datagrams (11 bytes), printed 1, denied 1 (--allow/--deny); answered 1',
    );
    expect(stranger.packetsReceived).toBe(0);
  });

  it.each([
    [['--rate-limit', '0'], "rate limit '0' is not a positive integer"],
    [['--max-sources', '10'], '--max-sources bounds the --rate-limit table: give --rate-limit too'],
    [['--rate-limit', '5', '--max-sources', 'x'], "max sources 'x' is not a positive integer"],
  ])('refuses %j with one line and exit 2', async (args, message) => {
    const r = await runCli(['echo', '127.0.0.1', '0', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`udpkit echo: ${message} (see 'udpkit echo --help')\n`);
  });
});
