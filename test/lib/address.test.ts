import { lookup as dnsLookup } from 'node:dns';
import { describe, expect, it, vi } from 'vitest';
import type { LookupAddress, LookupFunction } from '../../src/lib/address.js';
import {
  AbortError,
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

/** A resolver that answers from a table and never leaves the process. */
function fakeLookup(table: Record<string, LookupAddress[]>) {
  return vi.fn<LookupFunction>((hostname, _options, callback) => {
    const found = table[hostname];
    if (found) {
      queueMicrotask(() => callback(null, found));
    } else {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: 'ENOTFOUND',
        syscall: 'getaddrinfo',
        hostname,
      });
      queueMicrotask(() => callback(err, []));
    }
  });
}

const NAMES: Record<string, LookupAddress[]> = {
  'v4.test': [{ address: '192.0.2.1', family: 4 }],
  'v6.test': [{ address: '2001:db8::1', family: 6 }],
  // IPv6 first, as a resolver sorting by RFC 6724 may answer.
  'dual.test': [
    { address: '2001:db8::2', family: 6 },
    { address: '192.0.2.2', family: 4 },
    { address: '192.0.2.3', family: 4 },
  ],
};

describe('resolveHost', () => {
  it('passes literals through with their family, never calling the lookup', async () => {
    const lookup = fakeLookup(NAMES);
    await expect(resolveHost('127.0.0.1', { lookup })).resolves.toEqual({
      address: '127.0.0.1',
      family: 'IPv4',
    });
    await expect(resolveHost('::1', { lookup })).resolves.toEqual({ address: '::1', family: 'IPv6' });
    await expect(resolveHost('192.0.2.9', { lookup, family: 'IPv4' })).resolves.toMatchObject({
      address: '192.0.2.9',
    });
    expect(lookup).not.toHaveBeenCalled();
  });
  it('resolves names through the given lookup, asking for every address', async () => {
    const lookup = fakeLookup(NAMES);
    await expect(resolveHost('v4.test', { lookup })).resolves.toEqual({
      address: '192.0.2.1',
      family: 'IPv4',
    });
    await expect(resolveHost('v6.test', { lookup })).resolves.toEqual({
      address: '2001:db8::1',
      family: 'IPv6',
    });
    expect(lookup).toHaveBeenCalledTimes(2);
    expect(lookup.mock.calls[0]?.slice(0, 2)).toEqual(['v4.test', { family: 0, all: true }]);
  });
  it('prefers the first IPv4 address unless family says otherwise', async () => {
    const lookup = fakeLookup(NAMES);
    await expect(resolveHost('dual.test', { lookup })).resolves.toEqual({
      address: '192.0.2.2',
      family: 'IPv4',
    });
    await expect(resolveHost('dual.test', { lookup, family: 'IPv6' })).resolves.toEqual({
      address: '2001:db8::2',
      family: 'IPv6',
    });
    await expect(resolveHost('dual.test', { lookup, family: 'IPv4' })).resolves.toEqual({
      address: '192.0.2.2',
      family: 'IPv4',
    });
    expect(lookup.mock.calls.map((call) => call[1].family)).toEqual([0, 6, 4]);
  });
  it('applies family itself when the lookup ignores it', async () => {
    const lookup = fakeLookup(NAMES);
    const err = await resolveHost('v6.test', { lookup, family: 'IPv4' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolveError);
    expect(err).toMatchObject({
      code: 'UDP_ERR_RESOLVE',
      message: "cannot resolve host 'v6.test': no such host",
    });
  });
  it('accepts a lookup that ignores all and answers one address', async () => {
    const lookup: LookupFunction = (_hostname, _options, callback) => callback(null, '2001:db8::7', 6);
    await expect(resolveHost('one.test', { lookup })).resolves.toEqual({
      address: '2001:db8::7',
      family: 'IPv6',
    });
  });
  it('rejects an unresolvable name with UDP_ERR_RESOLVE, keeping the system error', async () => {
    const lookup = fakeLookup(NAMES);
    const err = await resolveHost('no-such-host.invalid', { lookup }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolveError);
    expect(err).toMatchObject({
      code: 'UDP_ERR_RESOLVE',
      message: "cannot resolve host 'no-such-host.invalid': no such host",
      host: 'no-such-host.invalid',
      errno: 'ENOTFOUND',
      syscall: 'getaddrinfo',
    });
    expect((err as ResolveError).cause).toMatchObject({ code: 'ENOTFOUND' });
  });
  it('says when resolution failed for now (EAI_AGAIN)', async () => {
    const lookup: LookupFunction = (_hostname, _options, callback) =>
      callback(Object.assign(new Error('getaddrinfo EAI_AGAIN x.test'), { code: 'EAI_AGAIN' }), []);
    await expect(resolveHost('x.test', { lookup })).rejects.toMatchObject({
      name: 'ResolveError',
      code: 'UDP_ERR_RESOLVE',
      message: "cannot resolve host 'x.test': temporary failure in name resolution",
    });
  });
  it('rejects an answer that is not an IP address', async () => {
    const lookup: LookupFunction = (_hostname, _options, callback) =>
      callback(null, [{ address: 'not-an-ip', family: 4 }]);
    await expect(resolveHost('x.test', { lookup })).rejects.toMatchObject({
      name: 'ResolveError',
      code: 'UDP_ERR_RESOLVE',
      message: "cannot resolve host 'x.test': the lookup answered 'not-an-ip', which is not an IP address",
    });
  });
  it('turns a lookup that throws into a coded error', async () => {
    const lookup: LookupFunction = () => {
      throw new TypeError('broken resolver');
    };
    await expect(resolveHost('x.test', { lookup })).rejects.toMatchObject({
      name: 'SocketError',
      code: 'UDP_ERR_SOCKET',
      message: 'cannot resolve x.test: broken resolver',
    });
  });
  it('uses dns.lookup when no lookup is given', async () => {
    // localhost is answered from the hosts file: no query leaves the machine.
    await expect(resolveHost('localhost')).resolves.toEqual({ address: '127.0.0.1', family: 'IPv4' });
  });
  it('refuses a literal of the other family', async () => {
    await expect(resolveHost('::1', { family: 'IPv4' })).rejects.toThrow(
      new InvalidArgumentError("'::1' is an IPv6 address, but IPv4 was asked for"),
    );
  });
  it('honours an aborted signal without calling the lookup', async () => {
    const lookup = fakeLookup(NAMES);
    const err = await resolveHost('v4.test', { lookup, signal: AbortSignal.abort() }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AbortError);
    expect(err).toMatchObject({ code: 'UDP_ERR_ABORTED' });
    expect(lookup).not.toHaveBeenCalled();
  });
  it('stops waiting for a lookup that hangs when the signal fires', async () => {
    const controller = new AbortController();
    const lookup = vi.fn<LookupFunction>(() => {
      // never answers
    });
    const pending = resolveHost('slow.test', { lookup, signal: controller.signal });
    expect(lookup).toHaveBeenCalledOnce();
    controller.abort(new Error('enough'));
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err).toMatchObject({ code: 'UDP_ERR_ABORTED', cause: new Error('enough') });
  });
  it('takes dns.lookup itself as a lookup', () => {
    // A type check: passing node's own function must compile, so users can wrap or pass it.
    const lookup: LookupFunction = dnsLookup;
    expect(typeof lookup).toBe('function');
  });
});
