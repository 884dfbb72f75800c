import { describe, expect, it } from 'vitest';
import {
  formatEndpoint,
  InvalidArgumentError,
  isHostLike,
  isHostPort,
  isPortNumber,
  maxPayload,
  parseHostPort,
  parsePort,
  ResolveError,
  resolveHost,
} from '../../src/lib/index.js';

describe('parsePort', () => {
  it('accepts 0-65535 as text or number', () => {
    expect(parsePort('0')).toBe(0);
    expect(parsePort('65535')).toBe(65535);
    expect(parsePort(' 80 ')).toBe(80);
    expect(parsePort(9000)).toBe(9000);
  });
  it('names the bad value and the range', () => {
    expect(() => parsePort('70000')).toThrow(
      new InvalidArgumentError('port 70000 is out of range (0-65535)'),
    );
    expect(() => parsePort('abc')).toThrow("port 'abc' is not a number (0-65535)");
    expect(() => parsePort('-1')).toThrow("port '-1' is not a number");
    expect(() => parsePort('1.5')).toThrow('is not a number');
    expect(() => parsePort(-1)).toThrow('port -1 is out of range');
    expect(() => parsePort(1.5)).toThrow('out of range');
    try {
      parsePort('x');
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).code).toBe('UDP_ERR_INVALID_ARG');
    }
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:9000', { host: '127.0.0.1', port: 9000 }],
    ['localhost:9000', { host: 'localhost', port: 9000 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    ['[::1]', { host: '::1' }],
    ['::1', { host: '::1' }],
    ['::', { host: '::' }],
    ['fe80::1', { host: 'fe80::1' }],
    ['9000', { port: 9000 }],
    [':9000', { port: 9000 }],
    ['example.com', { host: 'example.com' }],
    ['0.0.0.0', { host: '0.0.0.0' }],
  ])('%s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });
  it.each([
    ['', 'empty address'],
    ['[::1', "'[::1' has '[' without ']'"],
    ['[1.2.3.4]:5', "'1.2.3.4' in '[1.2.3.4]:5' is not an IPv6 address"],
    ['[::1]x', "unexpected 'x' after ']'"],
    ['host:70000', 'port 70000 is out of range (0-65535)'],
    ['host:', "port '' is not a number"],
    ['1:2:3:zz', 'write IPv6 with a port as [addr]:port'],
    ['bad host:1', "'bad host' in 'bad host:1' is not a valid host name"],
  ])('rejects %j', (text, message) => {
    expect(() => parseHostPort(text)).toThrow(message);
  });
});

describe('predicates', () => {
  it('isHostPort needs both parts', () => {
    expect(isHostPort('a:1')).toBe(true);
    expect(isHostPort('[::1]:1')).toBe(true);
    expect(isHostPort('a')).toBe(false);
    expect(isHostPort('1')).toBe(false);
    expect(isHostPort('a:99999')).toBe(false);
  });
  it('isPortNumber and isHostLike', () => {
    expect(isPortNumber('65535')).toBe(true);
    expect(isPortNumber('65536')).toBe(false);
    expect(isPortNumber('0x10')).toBe(false);
    expect(isHostLike('10.0.0.5')).toBe(true);
    expect(isHostLike('::1')).toBe(true);
    expect(isHostLike('my-host.example')).toBe(true);
    expect(isHostLike('Hello World')).toBe(false);
    expect(isHostLike('-bad')).toBe(false);
  });
  it('formats endpoints with brackets for IPv6', () => {
    expect(formatEndpoint('127.0.0.1', 5)).toBe('127.0.0.1:5');
    expect(formatEndpoint('::1', 5)).toBe('[::1]:5');
  });
  it('knows the payload limits', () => {
    expect(maxPayload('IPv4')).toBe(65507);
    expect(maxPayload('IPv6')).toBe(65527);
  });
});

describe('resolveHost', () => {
  it('passes literals through with their family', async () => {
    await expect(resolveHost('127.0.0.1')).resolves.toEqual({ address: '127.0.0.1', family: 'IPv4' });
    await expect(resolveHost('::1')).resolves.toEqual({ address: '::1', family: 'IPv6' });
  });
  it('prefers IPv4 for localhost', async () => {
    await expect(resolveHost('localhost')).resolves.toEqual({ address: '127.0.0.1', family: 'IPv4' });
  });
  it('refuses a literal of the other family', async () => {
    await expect(resolveHost('::1', { family: 'IPv4' })).rejects.toThrow(
      "'::1' is an IPv6 address, but IPv4 was asked for",
    );
  });
  it('rejects an unresolvable name with UDP_ERR_RESOLVE', async () => {
    const err = await resolveHost('no-such-host.invalid').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolveError);
    expect((err as ResolveError).code).toBe('UDP_ERR_RESOLVE');
    expect((err as ResolveError).message).toMatch(/^cannot resolve host 'no-such-host.invalid'/);
  });
  it('honours an aborted signal', async () => {
    await expect(resolveHost('localhost', { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'UDP_ERR_ABORTED',
    });
  });
});
