/** The CLI's argument parsers, without spawning anything. */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFamily,
  parseByteSize,
  parseCount,
  parseDuration,
  parseListenPositionals,
  parseSendPositionals,
  parseStatsFlags,
  UsageError,
} from '../../src/cli/args.js';
import { parseListenArgs } from '../../src/cli/commands/listen.js';
import { parseSendArgs } from '../../src/cli/commands/send.js';
import { resolveHost } from '../../src/lib/index.js';

// The parsers are pure: a name such as 3com.invalid must never reach the resolver here. The
// system's lookup is replaced for this file by one that fails the test if anything calls it.
const dns = createRequire(import.meta.url)('node:dns') as typeof import('node:dns');
const systemLookup = dns.lookup;
beforeAll(() => {
  dns.lookup = (() => {
    throw new Error('the machine resolver was asked');
  }) as unknown as typeof dns.lookup;
  syncBuiltinESMExports();
});
afterAll(() => {
  dns.lookup = systemLookup;
  syncBuiltinESMExports();
});

it('no name in this file reaches the machine resolver (the guard holds)', async () => {
  await expect(resolveHost('3com.invalid')).rejects.toThrow('the machine resolver was asked');
});

describe('parseSendPositionals', () => {
  it.each([
    [['Hello', 'World', 'UDP'], { messages: ['Hello', 'World', 'UDP'] }],
    [['127.0.0.1', '9000', 'hi'], { host: '127.0.0.1', port: 9000, messages: ['hi'] }],
    [['10.0.0.5', '9000'], { host: '10.0.0.5', port: 9000, messages: [] }],
    [['localhost:9000', 'a', 'b'], { host: 'localhost', port: 9000, messages: ['a', 'b'] }],
    [['[::1]:9000', 'hi'], { host: '::1', port: 9000, messages: ['hi'] }],
    [['::1', '9000', 'hi'], { host: '::1', port: 9000, messages: ['hi'] }],
    [['[::1]', 'hi'], { host: '::1', messages: ['hi'] }],
    [['[::1]', '9000', 'hi'], { host: '::1', port: 9000, messages: ['hi'] }],
    [['[::1]:9000', '9001'], { host: '::1', port: 9000, messages: ['9001'] }],
    [['::1', 'hi'], { host: '::1', messages: ['hi'] }],
    [['127.0.0.1', 'hi'], { host: '127.0.0.1', messages: ['hi'] }],
    [['127.0.0.1'], { host: '127.0.0.1', messages: [] }],
    [['[fe80::1%lo]', '9', 'hi'], { host: 'fe80::1%lo', port: 9, messages: ['hi'] }],
    [[':9', 'hi'], { port: 9, messages: ['hi'] }],
    [[':9', '9000'], { port: 9, messages: ['9000'] }],
    [['3com.invalid', '9000', 'hi'], { host: '3com.invalid', port: 9000, messages: ['hi'] }],
    [['1e3', 'hi'], { messages: ['1e3', 'hi'] }],
    [['1.2.3', 'hi'], { messages: ['1.2.3', 'hi'] }],
    [['9000'], { messages: ['9000'] }],
    [['hello world', '9000'], { messages: ['hello world', '9000'] }],
    [['Hello', '42'], { host: 'Hello', port: 42, messages: [] }],
    [['hi', '127.0.0.1:9000'], { messages: ['hi', '127.0.0.1:9000'] }],
    [['http://x'], { messages: ['http://x'] }],
    [[], { messages: [] }],
  ])('%j', (args, expected) => {
    expect(parseSendPositionals(args)).toEqual(expected);
  });
  it('a target that looks like one but is malformed is an error, not a message', () => {
    expect(() => parseSendPositionals(['10.0.0.5', '99999', 'hi'])).toThrow(
      new UsageError('port 99999 is out of range (0-65535)'),
    );
    expect(() => parseSendPositionals(['host:70000'])).toThrow(UsageError);
    expect(() => parseSendPositionals(['127.0.0.1', '70000', 'hi'])).toThrow(
      new UsageError('port 70000 is out of range (0-65535)'),
    );
  });
  it.each([
    [['[fe80::1%', '9', 'hi'], "'[fe80::1%' has '[' without ']'"],
    [['[::1', 'hi'], "'[::1' has '[' without ']'"],
    [['[127.0.0.1]:9', 'hi'], "'127.0.0.1' in '[127.0.0.1]:9' is not an IPv6 address"],
    [['[::1]x', 'hi'], "unexpected 'x' after ']' in '[::1]x'"],
    [[':x', 'hi'], "port 'x' is not a number (0-65535)"],
    [[':99999', 'hi'], 'port 99999 is out of range (0-65535)'],
    [['[::1]', '99999', 'hi'], 'port 99999 is out of range (0-65535)'],
  ])('a first positional starting with [ or : is always a target: %j', (args, message) => {
    expect(() => parseSendPositionals(args)).toThrow(new UsageError(message));
  });
  it.each([
    [['1e3', '9000', 'hi'], "'1e3' is not a port number (0-65535) or an address"],
    [['12345abc', '9000', 'hi'], "'12345abc' is not a port number (0-65535) or an address"],
    [['1.2.3', '9000', 'hi'], "'1.2.3' is not a valid IPv4 address"],
    [['256.1.1.1', '9000', 'hi'], "'256.1.1.1' is not a valid IPv4 address"],
    [['1.2.3.4.5', '9000'], "'1.2.3.4.5' is not a valid IPv4 address"],
    [['010.0.0.1', '9000'], "'010.0.0.1' is not a valid IPv4 address"],
    [['9000', '9001', 'hi'], "'9000' is not a valid IPv4 address"],
    [['1.2.3:9000', 'hi'], "'1.2.3' is not a valid IPv4 address"],
  ])('a host before a port that would resolve as a number is an error: %j', (args, message) => {
    expect(() => parseSendPositionals(args)).toThrow(new UsageError(message));
  });
});

describe('parseListenPositionals', () => {
  it.each([
    [[], {}],
    [['9000'], { port: 9000 }],
    [['127.0.0.1'], { host: '127.0.0.1' }],
    [['127.0.0.1', '9000'], { host: '127.0.0.1', port: 9000 }],
    [['[::1]:9000'], { host: '::1', port: 9000 }],
    [['::', '0'], { host: '::', port: 0 }],
    [['3com.invalid'], { host: '3com.invalid' }],
    [['3com.invalid', '9000'], { host: '3com.invalid', port: 9000 }],
    [['localhost:9000'], { host: 'localhost', port: 9000 }],
  ])('%j', (args, expected) => {
    expect(parseListenPositionals(args)).toEqual(expected);
  });
  it.each([
    [['a', 'b', 'c'], 'too many arguments: expected [host] [port], got 3'],
    [['127.0.0.1:1', '2'], "'127.0.0.1:1' is not a host; write either 'host port' or 'host:port'"],
    [['127.0.0.1', 'x'], "port 'x' is not a number (0-65535)"],
    [['99999'], 'port 99999 is out of range (0-65535)'],
    [['12345abc'], "'12345abc' is not a port number (0-65535) or an address"],
    [['1e3'], "'1e3' is not a port number (0-65535) or an address"],
    [['250ms'], "'250ms' is not a port number (0-65535) or an address"],
    [['1e3', '9000'], "'1e3' is not a port number (0-65535) or an address"],
    [['1.2.3'], "'1.2.3' is not a valid IPv4 address"],
    [['256.1.1.1'], "'256.1.1.1' is not a valid IPv4 address"],
    [['1.2.3.4.5'], "'1.2.3.4.5' is not a valid IPv4 address"],
    [['1..2'], "'1..2' is not a valid IPv4 address"],
    [['1.2.3', '9000'], "'1.2.3' is not a valid IPv4 address"],
    [['1.2.3:9000'], "'1.2.3' is not a valid IPv4 address"],
    [['9000:80'], "'9000' is not a valid IPv4 address"],
  ])('rejects %j', (args, message) => {
    expect(() => parseListenPositionals(args)).toThrow(new UsageError(message));
  });
});

describe('checkFamily', () => {
  it.each([
    ['::1', 'IPv4', '-4 asks for IPv4, but ::1 is an IPv6 address'],
    ['::ffff:127.0.0.1', 'IPv4', '-4 asks for IPv4, but ::ffff:127.0.0.1 is an IPv6 address'],
    ['fe80::1%lo', 'IPv4', '-4 asks for IPv4, but fe80::1%lo is an IPv6 address'],
    ['127.0.0.1', 'IPv6', '-6 asks for IPv6, but 127.0.0.1 is an IPv4 address'],
  ] as const)('%s with %s is a usage error', (host, family, message) => {
    expect(() => checkFamily(host, family)).toThrow(new UsageError(message));
  });
  it.each([
    ['::1', 'IPv6'],
    ['127.0.0.1', 'IPv4'],
    ['localhost', 'IPv4'],
    ['localhost', 'IPv6'],
    [undefined, 'IPv4'],
    ['::1', undefined],
    [undefined, undefined],
  ] as const)('%s with %s is fine', (host, family) => {
    expect(() => checkFamily(host, family)).not.toThrow();
  });
  it('checks what the positional parsers return, brackets and port removed', () => {
    const { host } = parseSendPositionals(['[::1]:9', 'hi']);
    expect(() => checkFamily(host, 'IPv4')).toThrow(
      new UsageError('-4 asks for IPv4, but ::1 is an IPv6 address'),
    );
    const listen = parseListenPositionals(['::1', '9000']);
    expect(() => checkFamily(listen.host, 'IPv4')).toThrow(UsageError);
  });
});

describe('parseStatsFlags', () => {
  it.each([
    [{}, undefined],
    [{ stats: false }, undefined],
    [{ stats: true }, 1000],
    [{ statsInterval: '250ms' }, 250],
    [{ stats: true, statsInterval: '2s' }, 2000],
    [{ stats: false, statsInterval: '1h' }, 3_600_000],
  ])('%j is %s', (flags, ms) => {
    expect(parseStatsFlags(flags)).toBe(ms);
  });
  it('rejects a bad interval', () => {
    expect(() => parseStatsFlags({ statsInterval: 'soon' })).toThrow(
      new UsageError(
        "stats interval 'soon' is not a duration (e.g. 500ms, 5s, 2m; a bare number is seconds)",
      ),
    );
    expect(() => parseStatsFlags({ statsInterval: '0' })).toThrow(UsageError);
  });
});

describe('parseDuration and parseCount', () => {
  it.each([
    ['250ms', 250],
    ['1.5s', 1500],
    ['2', 2000],
    ['2m', 120000],
    ['1h', 3600000],
  ])('%s is %i ms', (text, ms) => {
    expect(parseDuration(text, 'timeout')).toBe(ms);
  });
  it.each(['', '5 s', '-1', '0', '1d', 'soon', '0ms'])('rejects %j', (text) => {
    expect(() => parseDuration(text, 'timeout')).toThrow(UsageError);
  });
  it('counts are positive integers', () => {
    expect(parseCount('3', 'count')).toBe(3);
    expect(() => parseCount('0', 'count')).toThrow("count '0' is not a positive integer");
    expect(() => parseCount('1.5', 'count')).toThrow(UsageError);
  });
});

describe('parseByteSize', () => {
  it.each([
    ['65536', 65536],
    ['512K', 524288],
    ['4M', 4194304],
    ['4MiB', 4194304],
    ['2kb', 2048],
    ['1G', 1073741824],
  ])('%s is %i bytes', (text, bytes) => {
    expect(parseByteSize(text, 'size')).toBe(bytes);
  });
  it.each(['', '4G', '-1', '0', 'lots', '2000M'])('rejects %j', (text) => {
    expect(() => parseByteSize(text, 'size')).toThrow(UsageError);
  });
});

describe('defaults', () => {
  it('listen binds 0.0.0.0:12345 with text output', () => {
    expect(parseListenArgs([], {})).toEqual({
      host: undefined,
      port: 12345,
      family: undefined,
      format: 'text',
      timestamps: false,
      count: undefined,
      idleTimeout: undefined,
      quiet: false,
      rcvbuf: 32 * 1024 * 1024,
      stats: undefined,
      access: undefined,
      join: [],
      source: undefined,
      iface: undefined,
      showDst: false,
      receiveThread: false,
      workers: 1,
      steer: 'hash',
    });
    expect(parseListenArgs([], { rcvbuf: '512K', stats: true })).toMatchObject({
      rcvbuf: 524288,
      stats: 1000,
    });
  });
  it('send goes to 127.0.0.1:12345, or ::1 with -6', () => {
    expect(parseSendArgs(['hi'], {})).toMatchObject({ host: '127.0.0.1', port: 12345, messages: ['hi'] });
    expect(parseSendArgs([], { ipv6: true })).toMatchObject({
      host: '::1',
      port: 12345,
      messages: undefined,
      framing: 'line',
    });
  });
});

describe('through the command parsers', () => {
  it('a target without a port goes to the default port', () => {
    expect(parseSendArgs(['[::1]', 'hi'], {})).toMatchObject({ host: '::1', port: 12345, messages: ['hi'] });
    expect(parseSendArgs(['127.0.0.1', 'hi'], {})).toMatchObject({
      host: '127.0.0.1',
      port: 12345,
      messages: ['hi'],
    });
    expect(parseSendArgs([':9', 'hi'], {})).toMatchObject({ host: '127.0.0.1', port: 9, messages: ['hi'] });
    expect(parseSendArgs([':9', 'hi'], { ipv6: true })).toMatchObject({ host: '::1', port: 9 });
  });
  it('a malformed target is a usage error, not a message', () => {
    expect(() => parseSendArgs(['[fe80::1%', '9', 'hi'], {})).toThrow(UsageError);
    expect(() => parseSendArgs(['1.2.3', '9000', 'hi'], {})).toThrow(
      new UsageError("'1.2.3' is not a valid IPv4 address"),
    );
  });
  it('listen takes no host that starts like a number but is not one', () => {
    expect(() => parseListenArgs(['12345abc'], {})).toThrow(
      new UsageError("'12345abc' is not a port number (0-65535) or an address"),
    );
    expect(() => parseListenArgs(['1e3'], {})).toThrow(UsageError);
    expect(() => parseListenArgs(['1.2.3', '9000'], {})).toThrow(UsageError);
  });
});
