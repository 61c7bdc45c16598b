/**
 * TCP sockets through libc: create, set options, bind, listen, connect,
 * accept, send, shut down — plus `socketpair` for two connected ends without
 * a port.
 *
 * The wrappers throw {@linkcode ErrnoError}, except where "not ready yet" is a
 * normal answer on a non-blocking socket: {@linkcode accept} and
 * {@linkcode send} return `null` for EAGAIN/EWOULDBLOCK.
 *
 * SIGPIPE: Deno, like most Rust programs, starts with SIGPIPE ignored, so a
 * write to a reset connection already fails with EPIPE instead of killing the
 * process. {@linkcode send} adds `MSG_NOSIGNAL` anyway, so the code stays
 * correct where the signal is not ignored.
 *
 * FFI bypasses `--allow-net`, so {@linkcode bind} itself refuses any address
 * but loopback unless the program was started with `--public`.
 *
 * @module
 */
import { isLoopbackHost, publicBindAllowed, withoutBrackets } from "../toolkit/program.ts";
import { type DescriptorOptions, setNonBlocking, transfer } from "./descriptors.ts";
import {
  check,
  ECONNABORTED,
  EINPROGRESS,
  EINTR,
  ErrnoError,
  ETIMEDOUT,
  isWouldBlock,
} from "./errno.ts";
import { poll, POLLOUT } from "./poll.ts";
import {
  AF_INET,
  type AF_INET6,
  decodeSockaddr,
  encodeSockaddr,
  familyOf,
  SOCKADDR_IN6_SIZE,
  type SocketAddress,
} from "./sockaddr.ts";
import { sys } from "./sys.ts";

/** Local (Unix-domain) sockets, as used by {@linkcode socketPair}. */
export const AF_UNIX = 1;
/** A reliable byte stream: TCP for `AF_INET`/`AF_INET6`. */
export const SOCK_STREAM = 1;

/**
 * Type flag for `socket`/`accept4`/`socketpair`: create the fd non-blocking
 * (0o4000, the same bit as `O_NONBLOCK`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, connectTcp, isNonBlocking, listenTcp, SOCK_NONBLOCK, sys } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const client = connectTcp("127.0.0.1", listener.port);
 * const { value: fd } = sys.accept4(listener.fd, null, null, SOCK_NONBLOCK);
 * assert.ok(isNonBlocking(fd));
 * for (const each of [fd, client, listener.fd]) close(each);
 * ```
 */
export const SOCK_NONBLOCK = 0o4000;

/**
 * Type flag: close the fd in programs started with exec (0o2000000), so a
 * child process does not keep the connection open.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, connectTcp, listenTcp, SOCK_CLOEXEC, sys } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const client = connectTcp("127.0.0.1", listener.port);
 * const { value: fd } = sys.accept4(listener.fd, null, null, SOCK_CLOEXEC);
 * const F_GETFD = 1, FD_CLOEXEC = 1;
 * assert.equal(sys.fcntl(fd, F_GETFD).value & FD_CLOEXEC, FD_CLOEXEC);
 * for (const each of [fd, client, listener.fd]) close(each);
 * ```
 */
export const SOCK_CLOEXEC = 0o2000000;

/**
 * `setsockopt`/`getsockopt` level for generic socket options such as
 * {@linkcode SO_SNDBUF}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, SOL_SOCKET, sys } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * const value = new Int32Array(1);
 * const SO_TYPE = 3, SOCK_STREAM = 1;
 * assert.equal(sys.getsockopt(fd, SOL_SOCKET, SO_TYPE, value, new Uint32Array([4])).value, 0);
 * assert.equal(value[0], SOCK_STREAM);
 * close(fd);
 * ```
 */
export const SOL_SOCKET = 1;

/** Allow binding a port that still has connections in TIME_WAIT. */
export const SO_REUSEADDR = 2;
/** Read-and-clear the pending error (how a non-blocking `connect` reports failure). */
export const SO_ERROR = 4;

/**
 * Send buffer size. Linux doubles the value you set (room for its own
 * bookkeeping) and has a floor: a small buffer makes "the peer does not read"
 * show up after a few KiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, setSocketOption, SO_SNDBUF, SOL_SOCKET, sys } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * setSocketOption(fd, SOL_SOCKET, SO_SNDBUF, 8192);
 * const value = new Int32Array(1);
 * sys.getsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, new Uint32Array([4]));
 * assert.equal(value[0], 2 * 8192);
 * close(fd);
 * ```
 */
export const SO_SNDBUF = 7;

/** `struct linger`: with a 0 s timeout, `close` sends RST instead of FIN. */
export const SO_LINGER = 13;

/**
 * `shutdown`: no more writing; the peer reads EOF (this side sends FIN) while
 * it can still answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, read, send, SHUT_WR, shutdown, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * shutdown(left, SHUT_WR);
 * assert.equal(read(right, new Uint8Array(8)), 0); // EOF...
 * send(right, new Uint8Array([42])); // ...yet right may still answer
 * assert.equal(read(left, new Uint8Array(8)), 1);
 * close(left);
 * close(right);
 * ```
 */
export const SHUT_WR = 1;

/** `send` flag: fail with EPIPE instead of raising SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;

// Scratch buffers for sync calls. The JS thread runs one sync call at a time,
// so sharing them is safe.
const intScratch = new Int32Array(1);
const lengthScratch = new Uint32Array(1);
const pairScratch = new Int32Array(2);
const addressScratch = new Uint8Array(SOCKADDR_IN6_SIZE);
const lingerScratch = new Int32Array(2);

function creationFlags(options: DescriptorOptions): number {
  return (options.nonBlocking ? SOCK_NONBLOCK : 0) |
    (options.closeOnExec === false ? 0 : SOCK_CLOEXEC);
}

/**
 * `socket(family, SOCK_STREAM, 0)`: a new, unbound TCP socket, IPv4 unless
 * `family` is `AF_INET6`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, isNonBlocking } from "workbook/libc";
 *
 * const fd = createTcpSocket({ nonBlocking: true });
 * assert.ok(isNonBlocking(fd));
 * close(fd);
 * ```
 */
export function createTcpSocket(
  options: DescriptorOptions & { family?: typeof AF_INET | typeof AF_INET6 } = {},
): number {
  const family = options.family ?? AF_INET;
  return check("socket", sys.socket(family, SOCK_STREAM | creationFlags(options), 0));
}

/**
 * Sets an `int` socket option, e.g. `setSocketOption(fd, SOL_SOCKET, SO_SNDBUF, 4096)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, ErrnoError, setSocketOption, SOL_SOCKET } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * const TCP_NODELAY = 1, IPPROTO_TCP = 6;
 * setSocketOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
 * assert.throws(() => setSocketOption(fd, SOL_SOCKET, 12345, 1), ErrnoError); // no such option
 * close(fd);
 * ```
 */
export function setSocketOption(fd: number, level: number, name: number, value: number): void {
  intScratch[0] = value;
  check("setsockopt", sys.setsockopt(fd, level, name, intScratch));
}

/**
 * Reads an `int` socket option.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getSocketOption, SO_REUSEADDR } from "./socket.ts";
 * import { close, createTcpSocket, setReuseAddress, SOL_SOCKET } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * setReuseAddress(fd);
 * assert.equal(getSocketOption(fd, SOL_SOCKET, SO_REUSEADDR), 1);
 * close(fd);
 * ```
 */
export function getSocketOption(fd: number, level: number, name: number): number {
  lengthScratch[0] = intScratch.byteLength;
  check("getsockopt", sys.getsockopt(fd, level, name, intScratch, lengthScratch));
  return intScratch[0];
}

/**
 * `SO_REUSEADDR`: lets a restarted server bind its port while old connections
 * linger in TIME_WAIT. (It does not allow two listeners on one port.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, setReuseAddress, SOL_SOCKET, sys } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * setReuseAddress(fd);
 * const SO_REUSEADDR = 2, value = new Int32Array(1);
 * sys.getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, value, new Uint32Array([4]));
 * assert.equal(value[0], 1);
 * close(fd);
 * ```
 */
export function setReuseAddress(fd: number, on = true): void {
  setSocketOption(fd, SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}

/**
 * `SO_LINGER`. `setLinger(fd, 0)` makes the next `close` abort the connection
 * with RST (the peer sees ECONNRESET/EPIPE) — handy for testing error paths.
 * `null` restores the default graceful close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accept, close, connectTcp, ErrnoError, listenTcp, read, setLinger } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const client = connectTcp("127.0.0.1", listener.port);
 * const server = accept(listener.fd)!;
 * setLinger(server, 0);
 * close(server); // sends RST, not FIN
 * assert.throws(() => read(client, new Uint8Array(8)), (error) => {
 *   return error instanceof ErrnoError && error.code === "ECONNRESET";
 * });
 * close(client);
 * close(listener.fd);
 * ```
 */
export function setLinger(fd: number, seconds: number | null): void {
  lingerScratch[0] = seconds === null ? 0 : 1; // l_onoff
  lingerScratch[1] = seconds ?? 0; // l_linger
  check("setsockopt", sys.setsockopt(fd, SOL_SOCKET, SO_LINGER, lingerScratch), "SO_LINGER");
}

/**
 * Reads and clears the socket's pending error (`SO_ERROR`); 0 means none.
 * After a non-blocking connect becomes writable, this says whether it worked.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { socketError } from "./socket.ts";
 * import { close, createTcpSocket } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * assert.equal(socketError(fd), 0);
 * close(fd);
 * ```
 */
export function socketError(fd: number): number {
  return getSocketOption(fd, SOL_SOCKET, SO_ERROR);
}

/**
 * `bind` to an address and port (0 = let the kernel pick; see
 * {@linkcode getsockname}). Refuses a non-loopback address with
 * `Deno.errors.NotCapable` unless the program was started with `--public`:
 * Deno's `--allow-net` does not cover FFI sockets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bind, close, createTcpSocket, getsockname } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * bind(fd, "127.0.0.1", 0);
 * assert.ok(getsockname(fd).port > 0);
 * close(fd);
 *
 * const other = createTcpSocket();
 * assert.throws(() => bind(other, "0.0.0.0", 0), Deno.errors.NotCapable); // not without --public
 * close(other);
 * ```
 */
export function bind(fd: number, address: string, port: number): void {
  if (!isLoopbackHost(address) && !publicBindAllowed()) {
    throw new Deno.errors.NotCapable(
      `bind ${address}:${port}: not a loopback address. Lesson programs bind 127.0.0.1 or ::1 ` +
        `only; start the program with --public to bind another host.`,
    );
  }
  check("bind", sys.bind(fd, encodeSockaddr(address, port, addressScratch)), `${address}:${port}`);
}

/**
 * `listen`: turn a bound socket into one that queues incoming connections.
 *
 * @param backlog how many finished handshakes may wait for `accept`
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bind, close, connectTcp, createTcpSocket, getsockname, listen } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * bind(fd, "127.0.0.1", 0);
 * listen(fd, 64);
 * const client = connectTcp("127.0.0.1", getsockname(fd).port); // queued, not yet accepted
 * assert.ok(client >= 0);
 * close(client);
 * close(fd);
 * ```
 */
export function listen(fd: number, backlog = 128): void {
  check("listen", sys.listen(fd, backlog));
}

/**
 * Options for {@linkcode listenTcp}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, isNonBlocking, type ListenOptions, listenTcp } from "workbook/libc";
 *
 * const options: ListenOptions = { address: "127.0.0.1", port: 0, backlog: 16, nonBlocking: true };
 * const listener = listenTcp(options);
 * assert.ok(isNonBlocking(listener.fd));
 * close(listener.fd);
 * ```
 */
export interface ListenOptions {
  /** Address to bind. Default `"127.0.0.1"`: lesson servers stay on loopback. */
  address?: string;
  /** Port; default 0 lets the kernel choose a free one. */
  port?: number;
  /** Accept queue length. Default 128. */
  backlog?: number;
  /** Make the listening fd non-blocking (accept then returns null when idle). */
  nonBlocking?: boolean;
}

/**
 * A listening socket and the address it really got.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, getsockname, type Listener, listenTcp } from "workbook/libc";
 *
 * const listener: Listener = listenTcp();
 * assert.deepEqual(getsockname(listener.fd), { address: listener.address, port: listener.port });
 * close(listener.fd);
 * ```
 */
export interface Listener extends SocketAddress {
  /** The listening descriptor; close it when done. */
  fd: number;
}

/**
 * socket + `SO_REUSEADDR` + bind + listen + getsockname in one call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, listenTcp } from "workbook/libc";
 *
 * const listener = listenTcp({ port: 0, nonBlocking: true });
 * assert.equal(listener.address, "127.0.0.1");
 * assert.ok(listener.port > 0); // the port the kernel picked
 * close(listener.fd);
 * ```
 */
export function listenTcp(options: ListenOptions = {}): Listener {
  const address = withoutBrackets(options.address ?? "127.0.0.1");
  const fd = createTcpSocket({ nonBlocking: options.nonBlocking, family: familyOf(address) });
  try {
    setReuseAddress(fd);
    bind(fd, address, options.port ?? 0);
    listen(fd, options.backlog ?? 128);
    return { fd, ...getsockname(fd) };
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

/**
 * `connect`. A blocking socket waits for the handshake and returns
 * `"connected"`. A non-blocking one returns `"inProgress"` (EINPROGRESS): wait
 * for `POLLOUT`, then check {@linkcode socketError}. Other failures
 * (ECONNREFUSED, ...) throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, socketError } from "./socket.ts";
 * import { close, createTcpSocket, listenTcp, poll, POLLOUT } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const fd = createTcpSocket({ nonBlocking: true });
 * assert.equal(connect(fd, "127.0.0.1", listener.port), "inProgress");
 * assert.deepEqual(poll([{ fd, events: POLLOUT }], 1000), [POLLOUT]);
 * assert.equal(socketError(fd), 0); // the handshake succeeded
 * close(fd);
 * close(listener.fd);
 * ```
 */
export function connect(fd: number, address: string, port: number): "connected" | "inProgress" {
  const r = sys.connect(fd, encodeSockaddr(address, port, addressScratch));
  if (r.value === 0) return "connected";
  // EINTR: the handshake carries on in the background, exactly like EINPROGRESS.
  if (r.errno === EINPROGRESS || r.errno === EINTR) return "inProgress";
  throw new ErrnoError("connect", r.errno, `${address}:${port}`);
}

/**
 * Options for {@linkcode connectTcp}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, type ConnectOptions, connectTcp, isNonBlocking, listenTcp } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const options: ConnectOptions = { nonBlocking: true, timeoutMs: 1000 };
 * const fd = connectTcp("127.0.0.1", listener.port, options);
 * assert.ok(isNonBlocking(fd));
 * close(fd);
 * close(listener.fd);
 * ```
 */
export interface ConnectOptions {
  /** Leave the connected fd non-blocking. Default false. */
  nonBlocking?: boolean;
  /** Give up after this long (throws ETIMEDOUT). Default 5000 ms. */
  timeoutMs?: number;
}

/**
 * Opens a TCP connection and returns its fd once the handshake is done
 * (blocking the JS thread up to `timeoutMs`). Throws ErrnoError, e.g.
 * ECONNREFUSED when nobody listens. Meant for tests and small clients.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bind, close, connectTcp, createTcpSocket, ErrnoError, getsockname } from "workbook/libc";
 *
 * const bound = createTcpSocket(); // owns a port, but does not listen on it
 * bind(bound, "127.0.0.1", 0);
 * assert.throws(() => connectTcp("127.0.0.1", getsockname(bound).port), (error) => {
 *   return error instanceof ErrnoError && error.code === "ECONNREFUSED";
 * });
 * close(bound);
 * ```
 */
export function connectTcp(address: string, port: number, options: ConnectOptions = {}): number {
  // Connect non-blocking so a timeout can be enforced with poll.
  const fd = createTcpSocket({ nonBlocking: true, family: familyOf(address) });
  try {
    if (connect(fd, address, port) === "inProgress") {
      const timeoutMs = options.timeoutMs ?? 5000;
      const [revents] = poll([{ fd, events: POLLOUT }], timeoutMs);
      if (revents === 0) throw new ErrnoError("connect", ETIMEDOUT, `${address}:${port}`);
      const error = socketError(fd);
      if (error !== 0) throw new ErrnoError("connect", error, `${address}:${port}`);
    }
    if (!options.nonBlocking) setNonBlocking(fd, false);
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

/**
 * `accept4`: takes one queued connection and returns its fd, or `null` when
 * none is queued and the listener is non-blocking (EAGAIN). On a blocking
 * listener it waits — freezing the JS thread. The new fd does NOT inherit the
 * listener's O_NONBLOCK on Linux; ask for it with `nonBlocking`. A connection
 * aborted while queued (ECONNABORTED) and EINTR are skipped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accept, close, connectTcp, isNonBlocking, listenTcp } from "workbook/libc";
 *
 * const listener = listenTcp({ nonBlocking: true });
 * assert.equal(accept(listener.fd), null); // nobody has connected
 * const client = connectTcp("127.0.0.1", listener.port);
 * const conn = accept(listener.fd, { nonBlocking: true })!; // the handshake is done: queued
 * assert.ok(isNonBlocking(conn));
 * for (const fd of [conn, client, listener.fd]) close(fd);
 * ```
 */
export function accept(fd: number, options: DescriptorOptions = {}): number | null {
  const flags = creationFlags(options);
  for (;;) {
    const r = sys.accept4(fd, null, null, flags);
    if (r.value !== -1) return r.value;
    if (isWouldBlock(r.errno)) return null;
    // A connection reset while queued, or a signal: just try the next one.
    if (r.errno === EINTR || r.errno === ECONNABORTED) continue;
    throw new ErrnoError("accept4", r.errno, `fd ${fd}`);
  }
}

function socketAddressOf(
  syscall: "getsockname" | "getpeername",
  fd: number,
): SocketAddress {
  lengthScratch[0] = SOCKADDR_IN6_SIZE;
  check(syscall, sys[syscall](fd, addressScratch, lengthScratch), `fd ${fd}`);
  return decodeSockaddr(addressScratch);
}

/**
 * The local address of a socket — how to learn the port the kernel picked
 * after binding port 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, getsockname, listenTcp } from "workbook/libc";
 *
 * const listener = listenTcp({ port: 0 });
 * const { address, port } = getsockname(listener.fd);
 * assert.equal(address, "127.0.0.1");
 * assert.ok(port > 0);
 * close(listener.fd);
 * ```
 */
export function getsockname(fd: number): SocketAddress {
  return socketAddressOf("getsockname", fd);
}

/**
 * The remote address of a connected socket (ENOTCONN if not connected).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accept, close, connectTcp, getpeername, getsockname, listenTcp } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const client = connectTcp("127.0.0.1", listener.port);
 * const conn = accept(listener.fd)!;
 * assert.equal(getpeername(client).port, listener.port);
 * assert.deepEqual(getpeername(conn), getsockname(client));
 * for (const fd of [conn, client, listener.fd]) close(fd);
 * ```
 */
export function getpeername(fd: number): SocketAddress {
  return socketAddressOf("getpeername", fd);
}

/**
 * `send` with `MSG_NOSIGNAL` always added, so writing to a reset connection
 * throws ErrnoError EPIPE (or ECONNRESET) instead of raising SIGPIPE. Returns
 * bytes sent (maybe partial) or `null` when a non-blocking socket's buffer is
 * full.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, read, send, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * assert.equal(send(left, new TextEncoder().encode("hello")), 5);
 * assert.equal(read(right, new Uint8Array(16)), 5);
 * close(left);
 * close(right);
 * ```
 */
export function send(fd: number, buffer: Uint8Array, flags = 0): number | null {
  return transfer("send", fd, () => sys.send(fd, buffer, flags | MSG_NOSIGNAL));
}

/**
 * `shutdown`: `SHUT_WR` (default) sends FIN — the peer reads EOF while this
 * side can still read its answer (a half-close).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, read, shutdown, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * shutdown(left);
 * assert.equal(read(right, new Uint8Array(8)), 0); // EOF, though left is still open
 * close(left);
 * close(right);
 * ```
 */
export function shutdown(fd: number, how = SHUT_WR): void {
  check("shutdown", sys.shutdown(fd, how), `fd ${fd}`);
}

/**
 * `socketpair(AF_UNIX, SOCK_STREAM)`: two connected sockets, no port needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, read, send, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair({ nonBlocking: true });
 * send(right, new Uint8Array([1, 2]));
 * assert.equal(read(left, new Uint8Array(8)), 2); // both ways: it is a connection
 * close(left);
 * close(right);
 * ```
 */
export function socketPair(options: DescriptorOptions = {}): [number, number] {
  check(
    "socketpair",
    sys.socketpair(AF_UNIX, SOCK_STREAM | creationFlags(options), 0, pairScratch),
  );
  return [pairScratch[0], pairScratch[1]];
}
