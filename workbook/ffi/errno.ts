/**
 * errno for the libc bindings: the Linux numbers the lessons meet, their
 * names, and {@linkcode ErrnoError}, which the friendly wrappers throw.
 *
 * @module
 */
import { ffiAvailable, libc } from "./library.ts";
import type { SysResult } from "./sys.ts";

/**
 * No such file or directory; `epoll_ctl` also says it for an fd that is not
 * in the interest list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, ENOENT, EPOLL_CTL_DEL, epollCreate, epollCtl, ErrnoError, pipe } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [readEnd, writeEnd] = pipe();
 * assert.throws(
 *   () => epollCtl(epfd, EPOLL_CTL_DEL, readEnd), // never added
 *   (error) => error instanceof ErrnoError && error.errno === ENOENT,
 * );
 * for (const fd of [readEnd, writeEnd, epfd]) close(fd);
 * ```
 */
export const ENOENT = 2;

/**
 * A signal interrupted the call before it did anything; retry it. The
 * friendly wrappers retry for you (all but `close`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EINTR, errnoName } from "workbook/libc";
 *
 * const retryable = (errno: number) => errno === EINTR;
 * assert.ok(retryable(4) && errnoName(EINTR) === "EINTR");
 * ```
 */
export const EINTR = 4;

/**
 * Not an open descriptor (closed already, or never opened).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EBADF, sys } from "workbook/libc";
 *
 * assert.equal(sys.close(-1).errno, EBADF);
 * ```
 */
export const EBADF = 9;

/**
 * Non-blocking descriptor: the call would have to wait. Try later.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EAGAIN, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe({ nonBlocking: true });
 * assert.deepEqual(sys.read(readEnd, new Uint8Array(8)), { value: -1, errno: EAGAIN });
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export const EAGAIN = 11;

/**
 * Same number as {@linkcode EAGAIN} on Linux; POSIX allows either name, so
 * portable code checks both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EAGAIN, EWOULDBLOCK } from "workbook/libc";
 *
 * assert.equal(EWOULDBLOCK, EAGAIN);
 * ```
 */
export const EWOULDBLOCK: number = EAGAIN;

/**
 * An argument is invalid (e.g. `epoll_wait` on something that is not an epoll fd).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EINVAL, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * const events = new Uint8Array(16);
 * assert.equal(sys.epoll_wait(readEnd, events, 1, 0).errno, EINVAL);
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export const EINVAL = 22;

/**
 * The whole system is out of descriptors (the per-process twin is {@linkcode EMFILE}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EMFILE, ENFILE } from "workbook/libc";
 *
 * const outOfDescriptors = (errno: number) => errno === EMFILE || errno === ENFILE;
 * assert.ok(outOfDescriptors(ENFILE));
 * ```
 */
export const ENFILE = 23;

/**
 * This process hit its descriptor limit (`RLIMIT_NOFILE`, see `getrlimit`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EMFILE, ErrnoError } from "workbook/libc";
 *
 * const error = new ErrnoError("accept4", EMFILE);
 * assert.equal(error.code, "EMFILE");
 * assert.match(error.message, /Too many open files/);
 * ```
 */
export const EMFILE = 24;

/**
 * Writing to a connection whose other end has gone, or whose writing side
 * this process shut down (would raise SIGPIPE; `send` fails with EPIPE).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPIPE, ErrnoError, send, SHUT_WR, shutdown, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * shutdown(left, SHUT_WR);
 * assert.throws(
 *   () => send(left, new Uint8Array([1])),
 *   (error) => error instanceof ErrnoError && error.errno === EPIPE,
 * );
 * close(left);
 * close(right);
 * ```
 */
export const EPIPE = 32;

/**
 * A socket call on something that is not a socket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, ENOTSOCK, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * assert.equal(sys.accept4(readEnd, null, null, 0).errno, ENOTSOCK);
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export const ENOTSOCK = 88;

/**
 * Some socket is already bound (or listening) on that address and port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EADDRINUSE, ErrnoError, listenTcp } from "workbook/libc";
 *
 * const first = listenTcp();
 * assert.throws(
 *   () => listenTcp({ port: first.port }),
 *   (error) => error instanceof ErrnoError && error.errno === EADDRINUSE,
 * );
 * close(first.fd);
 * ```
 */
export const EADDRINUSE = 98;

/**
 * A queued connection was aborted before `accept` took it; accept the next one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ECONNABORTED, errnoName } from "workbook/libc";
 *
 * assert.equal(errnoName(ECONNABORTED), "ECONNABORTED");
 * ```
 */
export const ECONNABORTED = 103;

/**
 * The peer reset the connection (sent RST), e.g. after closing with a zero
 * linger, or with unread data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accept, close, connectTcp, ECONNRESET, listenTcp, setLinger, sys } from "workbook/libc";
 *
 * const listener = listenTcp();
 * const client = connectTcp("127.0.0.1", listener.port);
 * const server = accept(listener.fd)!;
 * setLinger(server, 0);
 * close(server); // RST instead of FIN
 * assert.deepEqual(sys.read(client, new Uint8Array(8)), { value: -1, errno: ECONNRESET });
 * close(client);
 * close(listener.fd);
 * ```
 */
export const ECONNRESET = 104;

/**
 * The operation timed out: `connectTcp` past its `timeoutMs`, or a read on a
 * connection that TCP keepalive gave up on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ErrnoError, ETIMEDOUT } from "workbook/libc";
 *
 * assert.equal(new ErrnoError("connect", ETIMEDOUT).code, "ETIMEDOUT");
 * ```
 */
export const ETIMEDOUT = 110;

/** Non-blocking `connect` started; wait for writability, then read `SO_ERROR`. */
export const EINPROGRESS = 115;

/** Linux errno values by number, for {@linkcode errnoName}. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  28: "ENOSPC",
  29: "ESPIPE",
  32: "EPIPE",
  34: "ERANGE",
  38: "ENOSYS",
  71: "EPROTO",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  106: "EISCONN",
  107: "ENOTCONN",
  108: "ESHUTDOWN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  112: "EHOSTDOWN",
  113: "EHOSTUNREACH",
  114: "EALREADY",
  115: "EINPROGRESS",
  125: "ECANCELED",
};

/**
 * The symbolic name of an errno value, e.g. `"EAGAIN"` for 11 (Linux numbering;
 * EWOULDBLOCK shares EAGAIN's number). Unknown values give `"ERRNO_<n>"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EAGAIN, errnoName } from "workbook/libc";
 *
 * assert.equal(errnoName(EAGAIN), "EAGAIN");
 * assert.equal(errnoName(111), "ECONNREFUSED");
 * assert.equal(errnoName(4242), "ERRNO_4242");
 * ```
 */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `ERRNO_${errno}`;
}

/**
 * libc's human-readable message for an errno value (`strerror(3)`), e.g.
 * "Connection reset by peer". Falls back to the name if libc can't be opened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { strerror } from "./errno.ts";
 *
 * assert.equal(strerror(104), "Connection reset by peer");
 * ```
 */
export function strerror(errno: number): string {
  if (!ffiAvailable().ok) return errnoName(errno);
  // strerror's buffer is static, but only this thread calls it and we copy at once.
  const text = libc().strerror(errno);
  return text === null ? errnoName(errno) : Deno.UnsafePointerView.getCString(text);
}

/**
 * A failed libc call: which call (`syscall`), the errno number and its name
 * (`code`, e.g. `"ECONNREFUSED"`). The message adds libc's explanation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EBADF, ErrnoError } from "workbook/libc";
 *
 * assert.throws(() => close(999_999), (error) => {
 *   assert.ok(error instanceof ErrnoError);
 *   assert.equal(error.syscall, "close");
 *   assert.equal(error.errno, EBADF);
 *   assert.equal(error.code, "EBADF");
 *   assert.equal(error.message, "close (fd 999999): EBADF: Bad file descriptor");
 *   return true;
 * });
 * ```
 */
export class ErrnoError extends Error {
  /** The errno value, e.g. 111. */
  readonly errno: number;
  /** The errno name, e.g. `"ECONNREFUSED"`. */
  readonly code: string;
  /** The libc function that failed, e.g. `"connect"`. */
  readonly syscall: string;

  /**
   * Builds the error for a failed call; the message includes libc's text.
   *
   * @param syscall the failing libc function
   * @param errno the errno it left
   * @param detail extra context appended to the message (an address, an fd)
   */
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall}${detail ? ` (${detail})` : ""}: ${code}: ${strerror(errno)}`);
    this.name = "ErrnoError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/**
 * Returns the call's value, or throws an {@linkcode ErrnoError} for -1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { check } from "./errno.ts";
 *
 * assert.equal(check("listen", { value: 0, errno: 0 }), 0);
 * assert.throws(() => check("listen", { value: -1, errno: 98 }), /listen: EADDRINUSE/);
 * ```
 */
export function check(syscall: string, r: SysResult, detail?: string): number {
  if (r.value === -1) throw new ErrnoError(syscall, r.errno, detail);
  return r.value;
}

/**
 * Runs a call again while a signal interrupts it (EINTR).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryInterrupted } from "./errno.ts";
 *
 * let tries = 0;
 * const r = retryInterrupted(() => ++tries < 3 ? { value: -1, errno: 4 } : { value: 7, errno: 0 });
 * assert.deepEqual([r.value, tries], [7, 3]);
 * ```
 */
export function retryInterrupted(call: () => SysResult): SysResult {
  for (;;) {
    const r = call();
    if (r.value !== -1 || r.errno !== EINTR) return r;
  }
}

/**
 * True for "not ready yet" on a non-blocking descriptor (EAGAIN/EWOULDBLOCK).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isWouldBlock } from "./errno.ts";
 *
 * assert.ok(isWouldBlock(11) && !isWouldBlock(104));
 * ```
 */
export function isWouldBlock(errno: number): boolean {
  return errno === EAGAIN || errno === EWOULDBLOCK;
}
