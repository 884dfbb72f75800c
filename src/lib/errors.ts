/**
 * Errors thrown and rejected by udpkit. Every error is a {@link UdpError} with a stable `code`;
 * the codes are listed in docs/errors.md and never change meaning.
 */
import { getSystemErrorMap } from 'node:util';

/** Every code a {@link UdpError} can carry. */
export type UdpErrorCode =
  | 'UDP_ERR_INVALID_ARG'
  | 'UDP_ERR_MSG_TOO_LARGE'
  | 'UDP_ERR_ADDR_IN_USE'
  | 'UDP_ERR_ADDR_NOT_AVAILABLE'
  | 'UDP_ERR_PERMISSION_DENIED'
  | 'UDP_ERR_RESOLVE'
  | 'UDP_ERR_CONN_REFUSED'
  | 'UDP_ERR_CLOSED'
  | 'UDP_ERR_SOCKET_STATE'
  | 'UDP_ERR_TIMEOUT'
  | 'UDP_ERR_ABORTED'
  | 'UDP_ERR_INPUT'
  | 'UDP_ERR_OUTPUT'
  | 'UDP_ERR_NOT_SUPPORTED'
  | 'UDP_ERR_SOCKET';

/** Details of the system call behind an error, when there was one. */
export interface SystemErrorDetails {
  /** The `errno` code from the operating system, such as `EADDRINUSE`. */
  errno?: string;
  /** The system call that failed: `bind`, `send`, `getaddrinfo`, ... */
  syscall?: string;
  /** The local or remote address involved. */
  address?: string;
  /** The local or remote port involved. */
  port?: number;
}

/** Base class of every error udpkit throws. `code` is stable; `message` is for people. */
export class UdpError extends Error {
  override name = 'UdpError';
  readonly code: UdpErrorCode;
  readonly errno: string | undefined;
  readonly syscall: string | undefined;
  readonly address: string | undefined;
  readonly port: number | undefined;
  /**
   * For a failed batch send (`sendEach`, `sendPacked`): how many of its datagrams the kernel
   * took before the error. The datagram at that index met the error; none after it was sent.
   */
  sent?: number;

  constructor(code: UdpErrorCode, message: string, options?: { cause?: unknown } & SystemErrorDetails) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errno = options?.errno;
    this.syscall = options?.syscall;
    this.address = options?.address;
    this.port = options?.port;
  }
}

type ErrorOptions = { cause?: unknown } & SystemErrorDetails;

/** An argument has the wrong type or an out-of-range value. Thrown before any I/O. */
export class InvalidArgumentError extends UdpError {
  override name = 'InvalidArgumentError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_INVALID_ARG', message, options);
  }
}

/** A datagram is larger than the protocol allows (65507 bytes on IPv4, 65527 on IPv6). */
export class MessageTooLargeError extends UdpError {
  override name = 'MessageTooLargeError';
  /** The size of the refused message in bytes. */
  readonly size: number;
  /** The largest size allowed in bytes. */
  readonly limit: number;
  constructor(message: string, size: number, limit: number, options?: ErrorOptions) {
    super('UDP_ERR_MSG_TOO_LARGE', message, options);
    this.size = size;
    this.limit = limit;
  }
}

/** The local address and port are already bound by another socket (EADDRINUSE). */
export class AddressInUseError extends UdpError {
  override name = 'AddressInUseError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_ADDR_IN_USE', message, options);
  }
}

/** The address does not belong to this host, so it cannot be bound (EADDRNOTAVAIL). */
export class AddressNotAvailableError extends UdpError {
  override name = 'AddressNotAvailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_ADDR_NOT_AVAILABLE', message, options);
  }
}

/** The operating system refused the operation (EACCES, EPERM), e.g. a port below 1024. */
export class PermissionDeniedError extends UdpError {
  override name = 'PermissionDeniedError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_PERMISSION_DENIED', message, options);
  }
}

/** A host name could not be resolved to an address. */
export class ResolveError extends UdpError {
  override name = 'ResolveError';
  /** The host name that did not resolve. */
  readonly host: string;
  constructor(message: string, host: string, options?: ErrorOptions) {
    super('UDP_ERR_RESOLVE', message, options);
    this.host = host;
  }
}

/** The peer answered with ICMP port unreachable (ECONNREFUSED on a connected socket). */
export class ConnectionRefusedError extends UdpError {
  override name = 'ConnectionRefusedError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_CONN_REFUSED', message, options);
  }
}

/** The socket was closed, before or during the call. */
export class SocketClosedError extends UdpError {
  override name = 'SocketClosedError';
  constructor(message = 'the socket is closed', options?: ErrorOptions) {
    super('UDP_ERR_CLOSED', message, options);
  }
}

/** The call does not fit the socket's state, such as binding a socket twice. */
export class SocketStateError extends UdpError {
  override name = 'SocketStateError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_SOCKET_STATE', message, options);
  }
}

/** Nothing happened within the time allowed. */
export class TimeoutError extends UdpError {
  override name = 'TimeoutError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_TIMEOUT', message, options);
  }
}

/** The caller's `AbortSignal` fired. `cause` holds the signal's reason. */
export class AbortError extends UdpError {
  override name = 'AbortError';
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super('UDP_ERR_ABORTED', message, options);
  }
}

/** Input data could not be framed into datagrams (bad hex, unreadable file). */
export class InputError extends UdpError {
  override name = 'InputError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_INPUT', message, options);
  }
}

/** Output could not be written: a full disk, a closed descriptor (never EPIPE: see the CLI). */
export class OutputError extends UdpError {
  override name = 'OutputError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_OUTPUT', message, options);
  }

  /** `cannot write output: no space left on device (ENOSPC)` from a write's system error. */
  static fromSystemError(err: Error): OutputError {
    const { code, syscall } = err as NodeJS.ErrnoException;
    return new OutputError(`cannot write output: ${code ? describeErrno(code) : err.message}`, {
      cause: err,
      ...(code !== undefined && { errno: code }),
      ...(syscall !== undefined && { syscall }),
    });
  }
}

/**
 * What was asked needs what this socket's transport lacks: the native addon (SO_BINDTODEVICE,
 * a chosen source address), when the socket runs on node:dgram.
 */
export class NotSupportedError extends UdpError {
  override name = 'NotSupportedError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_NOT_SUPPORTED', message, options);
  }
}

/** Any other failure of the operating system's socket calls. */
export class SocketError extends UdpError {
  override name = 'SocketError';
  constructor(message: string, options?: ErrorOptions) {
    super('UDP_ERR_SOCKET', message, options);
  }
}

interface NodeSystemError extends Error {
  code?: string;
  syscall?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

function isNodeSystemError(err: unknown): err is NodeSystemError {
  return err instanceof Error && typeof (err as NodeSystemError).code === 'string';
}

/** Formats `address` and `port` the way people write them: `1.2.3.4:5`, `[::1]:5`, `port 5`. */
function where(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return port === undefined ? '' : `port ${port}`;
  const host = address.includes(':') ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}

/** What was being done, to where, as the object of "cannot": `bind 1.2.3.4:5`, `send to [::1]:5`. */
function action(context: string, at: string): string {
  if (at === '') return context;
  return context === 'send' || context === 'connect' ? `${context} to ${at}` : `${context} ${at}`;
}

let errnoDescriptions: Map<string, string> | undefined;

/**
 * `invalid argument (EINVAL)`: the operating system's description of an errno name, as libuv
 * words it, or the name alone when it has none (a code that is not an errno).
 */
function describeErrno(code: string): string {
  errnoDescriptions ??= new Map([...getSystemErrorMap().values()].map(([name, text]) => [name, text]));
  const text = errnoDescriptions.get(code);
  return text ? `${text.charAt(0).toLowerCase()}${text.slice(1)} (${code})` : code;
}

/**
 * Turns an error from `node:dgram` or `node:dns` into the matching {@link UdpError}, keeping the
 * original as `cause` and its `syscall`, `address` and `port`. A `UdpError` passes through.
 * Messages are one sentence: `cannot bind [fe80::1%lo]:9000: invalid argument (EINVAL)`.
 *
 * @param err the error to translate
 * @param context what was being done, for the message: `bind`, `connect`, `send`, `resolve`
 * @param target the address and port involved, when the system error does not carry them
 */
export function fromSystemError(
  err: unknown,
  context: string,
  target?: { address?: string | undefined; port?: number | undefined },
): UdpError {
  if (err instanceof UdpError) return err;
  if (!isNodeSystemError(err)) {
    const what = action(context, where(target?.address, target?.port));
    return new SocketError(`cannot ${what}: ${String(err instanceof Error ? err.message : err)}`, {
      cause: err,
    });
  }
  const address = err.address ?? target?.address;
  const port = err.port ?? target?.port;
  const details: ErrorOptions = {
    cause: err,
    errno: err.code,
    syscall: err.syscall,
    address,
    port,
  };
  const at = where(address, port);
  const what = action(context, at);
  switch (err.code) {
    case 'EADDRINUSE':
      return new AddressInUseError(
        `${address !== undefined ? `address ${at}` : at || 'the address'} is already in use`,
        details,
      );
    case 'EADDRNOTAVAIL':
      return new AddressNotAvailableError(
        `cannot ${what}: the address is not available on this host`,
        details,
      );
    case 'EACCES':
    case 'EPERM':
      return new PermissionDeniedError(
        `permission denied to ${what}${
          context === 'bind' && port !== undefined && port > 0 && port < 1024
            ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
            : ''
        }`,
        details,
      );
    case 'EMSGSIZE':
      return new MessageTooLargeError(`message too large to ${what}`, -1, -1, details);
    case 'ECANCELED':
      return new SocketClosedError(`the socket was closed before the ${context} completed`, details);
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(
        `${at || 'the peer'} refused the datagram (ICMP port unreachable)`,
        details,
      );
    case 'ENOTFOUND':
    case 'EAI_NONAME':
    case 'EAI_NODATA':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'ESERVFAIL':
    case 'ENODATA': {
      const host = err.hostname ?? address ?? '';
      const why = err.code === 'EAI_AGAIN' ? 'temporary failure in name resolution' : 'no such host';
      return new ResolveError(`cannot resolve host '${host}': ${why}`, host, details);
    }
    default:
      return new SocketError(`cannot ${what}: ${describeErrno(err.code ?? '')}`, details);
  }
}
