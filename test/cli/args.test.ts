/** The CLI's argument parsers, without spawning anything. */
import { describe, expect, it } from 'vitest';
import {
  parseByteSize,
  parseCount,
  parseDuration,
  parseListenPositionals,
  parseSendPositionals,
  UsageError,
} from '../../src/cli/args.js';
import { parseListenArgs } from '../../src/cli/commands/listen.js';
import { parseSendArgs } from '../../src/cli/commands/send.js';

describe('parseSendPositionals', () => {
  it.each([
    [['Hello', 'World', 'UDP'], { messages: ['Hello', 'World', 'UDP'] }],
    [['127.0.0.1', '9000', 'hi'], { host: '127.0.0.1', port: 9000, messages: ['hi'] }],
    [['10.0.0.5', '9000'], { host: '10.0.0.5', port: 9000, messages: [] }],
    [['localhost:9000', 'a', 'b'], { host: 'localhost', port: 9000, messages: ['a', 'b'] }],
    [['[::1]:9000', 'hi'], { host: '::1', port: 9000, messages: ['hi'] }],
    [['::1', '9000', 'hi'], { host: '::1', port: 9000, messages: ['hi'] }],
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
  ])('%j', (args, expected) => {
    expect(parseListenPositionals(args)).toEqual(expected);
  });
  it.each([
    [['a', 'b', 'c'], 'too many arguments: expected [host] [port], got 3'],
    [['127.0.0.1:1', '2'], "'127.0.0.1:1' is not a host; write either 'host port' or 'host:port'"],
    [['127.0.0.1', 'x'], "port 'x' is not a number (0-65535)"],
  ])('rejects %j', (args, message) => {
    expect(() => parseListenPositionals(args)).toThrow(new UsageError(message));
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
      rcvbuf: 4 * 1024 * 1024,
      stats: undefined,
    });
    expect(parseListenArgs([], { rcvbuf: '512K', stats: true })).toMatchObject({
      rcvbuf: 524288,
      stats: 1000,
    });
    expect(parseListenArgs([], { stats: '250ms' })).toMatchObject({ stats: 250 });
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
