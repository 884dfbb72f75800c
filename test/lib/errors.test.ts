import { describe, expect, it } from 'vitest';
import {
  AddressInUseError,
  AddressNotAvailableError,
  ConnectionRefusedError,
  fromSystemError,
  MessageTooLargeError,
  PermissionDeniedError,
  ResolveError,
  SocketError,
  UdpError,
} from '../../src/lib/index.js';

function sysErr(code: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${code} happened`), { code, ...extra });
}

describe('fromSystemError', () => {
  it.each([
    ['EADDRINUSE', AddressInUseError, 'UDP_ERR_ADDR_IN_USE', 'address 0.0.0.0:12345 is already in use'],
    [
      'EADDRNOTAVAIL',
      AddressNotAvailableError,
      'UDP_ERR_ADDR_NOT_AVAILABLE',
      'cannot bind 0.0.0.0:12345: the address is not available on this host',
    ],
    ['EACCES', PermissionDeniedError, 'UDP_ERR_PERMISSION_DENIED', 'permission denied to bind 0.0.0.0:12345'],
    ['EMSGSIZE', MessageTooLargeError, 'UDP_ERR_MSG_TOO_LARGE', 'message too large to bind 0.0.0.0:12345'],
    [
      'ECONNREFUSED',
      ConnectionRefusedError,
      'UDP_ERR_CONN_REFUSED',
      '0.0.0.0:12345 refused the datagram (ICMP port unreachable)',
    ],
    ['EINVAL', SocketError, 'UDP_ERR_SOCKET', 'cannot bind 0.0.0.0:12345: invalid argument (EINVAL)'],
    [
      'ENETUNREACH',
      SocketError,
      'UDP_ERR_SOCKET',
      'cannot bind 0.0.0.0:12345: network is unreachable (ENETUNREACH)',
    ],
    ['EWHATEVER', SocketError, 'UDP_ERR_SOCKET', 'cannot bind 0.0.0.0:12345: EWHATEVER'],
  ])('maps %s', (code, cls, udpCode, message) => {
    const cause = sysErr(code, { syscall: 'bind' });
    const err = fromSystemError(cause, 'bind', { address: '0.0.0.0', port: 12345 });
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(UdpError);
    expect(err.code).toBe(udpCode);
    expect(err.message).toBe(message);
    expect(err.cause).toBe(cause);
    expect(err.syscall).toBe('bind');
    expect(err.errno).toBe(code);
    expect(err.address).toBe('0.0.0.0');
    expect(err.port).toBe(12345);
  });
  it('explains privileged ports', () => {
    const err = fromSystemError(sysErr('EACCES'), 'bind', { address: '0.0.0.0', port: 80 });
    expect(err.message).toBe(
      'permission denied to bind 0.0.0.0:80 (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
    );
  });
  it('brackets IPv6 addresses', () => {
    expect(fromSystemError(sysErr('EADDRINUSE'), 'bind', { address: '::1', port: 5 }).message).toBe(
      'address [::1]:5 is already in use',
    );
  });
  it('maps resolver failures to ResolveError with the host', () => {
    const err = fromSystemError(sysErr('ENOTFOUND', { hostname: 'nope.invalid' }), 'resolve');
    expect(err).toBeInstanceOf(ResolveError);
    expect((err as ResolveError).host).toBe('nope.invalid');
    expect(err.message).toBe("cannot resolve host 'nope.invalid': no such host");
  });
  it('passes UdpErrors through and wraps anything else', () => {
    const mine = new AddressInUseError('x');
    expect(fromSystemError(mine, 'bind')).toBe(mine);
    const other = fromSystemError('weird', 'send');
    expect(other).toBeInstanceOf(SocketError);
    expect(other.message).toBe('cannot send: weird');
    expect(fromSystemError(new Error('it broke'), 'send', { address: '::1', port: 9 }).message).toBe(
      'cannot send to [::1]:9: it broke',
    );
  });
  it('says each failure in one sentence, as libuv words it, without the syscall echo', () => {
    const libuv = sysErr('EINVAL', { syscall: 'bind', errno: -22 });
    libuv.message = 'bind EINVAL';
    expect(fromSystemError(libuv, 'bind', { address: 'fe80::1%lo', port: 9000 }).message).toBe(
      'cannot bind [fe80::1%lo]:9000: invalid argument (EINVAL)',
    );
  });
  it.each([
    [
      'EHOSTUNREACH',
      'send',
      { address: '10.0.0.5', port: 9 },
      'cannot send to 10.0.0.5:9: host is unreachable (EHOSTUNREACH)',
    ],
    [
      'ENOBUFS',
      'send',
      { address: '::1', port: 9 },
      'cannot send to [::1]:9: no buffer space available (ENOBUFS)',
    ],
    [
      'EAFNOSUPPORT',
      'connect',
      { address: '::1', port: 9 },
      'cannot connect to [::1]:9: address family not supported (EAFNOSUPPORT)',
    ],
    ['EIO', 'bind', { port: 9 }, 'cannot bind port 9: i/o error (EIO)'],
    ['EINVAL', 'bind', undefined, 'cannot bind: invalid argument (EINVAL)'],
    ['EMSGSIZE', 'send', { address: '10.0.0.5', port: 9 }, 'message too large to send to 10.0.0.5:9'],
    [
      'EACCES',
      'send',
      { address: '255.255.255.255', port: 9 },
      'permission denied to send to 255.255.255.255:9',
    ],
    ['EADDRNOTAVAIL', 'bind', undefined, 'cannot bind: the address is not available on this host'],
    ['EADDRINUSE', 'bind', { port: 9 }, 'port 9 is already in use'],
    ['EADDRINUSE', 'bind', undefined, 'the address is already in use'],
    ['ECONNREFUSED', 'send', undefined, 'the peer refused the datagram (ICMP port unreachable)'],
    ['ECANCELED', 'send', undefined, 'the socket was closed before the send completed'],
  ] as const)('%s on %s to %j', (code, context, target, message) => {
    expect(fromSystemError(sysErr(code), context, target).message).toBe(message);
  });
  it('sets name for each class', () => {
    expect(new AddressInUseError('x').name).toBe('AddressInUseError');
    expect(new MessageTooLargeError('x', 70000, 65507)).toMatchObject({ size: 70000, limit: 65507 });
  });
});
