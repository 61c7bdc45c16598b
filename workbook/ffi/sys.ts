/**
 * The raw layer of the libc bindings: one function per C call, C argument
 * order, and `{ value, errno }` results exactly as C sees them. Nothing throws
 * and nothing retries.
 *
 * Also {@linkcode sysAsync}, the two waits that run on a Deno FFI worker
 * thread. errno is thread-local: a threaded call sets it on whichever pool
 * thread ran it, and it can't be read reliably afterwards, so those return
 * bare numbers.
 *
 * @module
 */
import { lastErrno, libc } from "./library.ts";

/**
 * What a libc call returned, and errno when it returned -1 (0 otherwise).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EBADF, sys, type SysResult } from "workbook/libc";
 *
 * const result: SysResult = sys.close(-1);
 * assert.deepEqual(result, { value: -1, errno: EBADF });
 * ```
 */
export interface SysResult {
  /** The C return value; -1 means failure. */
  value: number;
  /** errno right after the call if `value` is -1, else 0. */
  errno: number;
}

/** Wraps a return value, reading errno immediately if it signals failure. */
function result(value: number): SysResult {
  return { value, errno: value === -1 ? lastErrno() : 0 };
}

/**
 * The raw calls: C argument order, buffers as typed arrays, `NULL` as `null`,
 * and `{ value, errno }` results. Nothing throws and nothing retries: this is
 * the layer for showing exactly what the kernel says. The sync calls run on
 * the JavaScript thread, so a blocking one freezes every timer and promise.
 *
 * @example A non-blocking accept with nobody connecting answers EAGAIN
 * ```ts
 * import assert from "node:assert/strict";
 * import { EAGAIN, listenTcp, sys } from "workbook/libc";
 *
 * const listener = listenTcp({ nonBlocking: true });
 * assert.deepEqual(sys.accept4(listener.fd, null, null, 0), { value: -1, errno: EAGAIN });
 * assert.deepEqual(sys.close(listener.fd), { value: 0, errno: 0 });
 * ```
 */
export const sys = {
  /** `socket(domain, type, protocol)` → new fd. */
  socket(domain: number, type: number, protocol = 0): SysResult {
    return result(libc().socket(domain, type, protocol));
  },
  /** `socketpair(domain, type, protocol, sv)`: writes the two fds into `sv`. */
  socketpair(domain: number, type: number, protocol: number, sv: Int32Array): SysResult {
    return result(libc().socketpair(domain, type, protocol, sv));
  },
  /** `pipe2(fds, flags)`: `fds[0]` is the read end, `fds[1]` the write end. */
  pipe2(fds: Int32Array, flags: number): SysResult {
    return result(libc().pipe2(fds, flags));
  },
  /** `setsockopt(fd, level, name, value, value.byteLength)`. */
  setsockopt(fd: number, level: number, name: number, value: BufferSource): SysResult {
    return result(libc().setsockopt(fd, level, name, value, value.byteLength));
  },
  /** `getsockopt(fd, level, name, value, length)`: `length[0]` in = room, out = size. */
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: BufferSource,
    length: Uint32Array,
  ): SysResult {
    return result(libc().getsockopt(fd, level, name, value, length));
  },
  /** `bind(fd, address, address.byteLength)`. */
  bind(fd: number, address: Uint8Array): SysResult {
    return result(libc().bind(fd, address, address.byteLength));
  },
  /** `connect(fd, address, address.byteLength)`. */
  connect(fd: number, address: Uint8Array): SysResult {
    return result(libc().connect(fd, address, address.byteLength));
  },
  /** `listen(fd, backlog)`. */
  listen(fd: number, backlog: number): SysResult {
    return result(libc().listen(fd, backlog));
  },
  /** `accept4(fd, address, length, flags)`; pass `null`s to skip the peer address. */
  accept4(
    fd: number,
    address: Uint8Array | null,
    length: Uint32Array | null,
    flags: number,
  ): SysResult {
    return result(libc().accept4(fd, address, length, flags));
  },
  /** `getsockname(fd, address, length)`. */
  getsockname(fd: number, address: Uint8Array, length: Uint32Array): SysResult {
    return result(libc().getsockname(fd, address, length));
  },
  /** `getpeername(fd, address, length)`. */
  getpeername(fd: number, address: Uint8Array, length: Uint32Array): SysResult {
    return result(libc().getpeername(fd, address, length));
  },
  /** `fcntl(fd, command, argument)`. */
  fcntl(fd: number, command: number, argument = 0): SysResult {
    return result(libc().fcntl(fd, command, BigInt(argument)));
  },
  /** `read(fd, buffer, buffer.byteLength)` → bytes read, 0 at EOF. */
  read(fd: number, buffer: Uint8Array): SysResult {
    return result(Number(libc().read(fd, buffer, BigInt(buffer.byteLength))));
  },
  /** `write(fd, buffer, buffer.byteLength)` → bytes written. Raises SIGPIPE unless ignored. */
  write(fd: number, buffer: Uint8Array): SysResult {
    return result(Number(libc().write(fd, buffer, BigInt(buffer.byteLength))));
  },
  /** `send(fd, buffer, buffer.byteLength, flags)`; add `MSG_NOSIGNAL` yourself here. */
  send(fd: number, buffer: Uint8Array, flags: number): SysResult {
    return result(Number(libc().send(fd, buffer, BigInt(buffer.byteLength), flags)));
  },
  /** `shutdown(fd, how)`. */
  shutdown(fd: number, how: number): SysResult {
    return result(libc().shutdown(fd, how));
  },
  /** `close(fd)`. */
  close(fd: number): SysResult {
    return result(libc().close(fd));
  },
  /** `poll(pollfds, count, timeoutMs)` over `count` 8-byte `struct pollfd`s. */
  poll(pollfds: Uint8Array, count: number, timeoutMs: number): SysResult {
    return result(libc().poll(pollfds, BigInt(count), timeoutMs));
  },
  /** `select(nfds, read, write, except, timeout)`; `fd_set`s are 128-byte arrays. */
  select(
    nfds: number,
    readSet: Uint8Array | null,
    writeSet: Uint8Array | null,
    exceptSet: Uint8Array | null,
    timeout: Uint8Array | null,
  ): SysResult {
    return result(libc().select(nfds, readSet, writeSet, exceptSet, timeout));
  },
  /** `epoll_create1(flags)` → epoll fd. */
  epoll_create1(flags: number): SysResult {
    return result(libc().epoll_create1(flags));
  },
  /** `epoll_ctl(epfd, op, fd, event)`; `event` is one `struct epoll_event` or null. */
  epoll_ctl(epfd: number, op: number, fd: number, event: Uint8Array | null): SysResult {
    return result(libc().epoll_ctl(epfd, op, fd, event));
  },
  /** `epoll_wait(epfd, events, maxEvents, timeoutMs)` → ready count. */
  epoll_wait(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): SysResult {
    return result(libc().epoll_wait(epfd, events, maxEvents, timeoutMs));
  },
  /** `getrlimit(resource, limit)`; `limit` is `[soft, hard]`. */
  getrlimit(resource: number, limit: BigUint64Array): SysResult {
    return result(libc().getrlimit(resource, limit));
  },
  /** `setrlimit(resource, limit)`. */
  setrlimit(resource: number, limit: BigUint64Array): SysResult {
    return result(libc().setrlimit(resource, limit));
  },
};

/**
 * The two waits that run on a Deno FFI worker thread: each returns a Promise
 * of the bare C return value. errno is NOT available (it was set on the worker
 * thread), so treat -1 as "failed, reason unknown" — `pollAsync` and
 * `epollWaitAsync` repeat the call synchronously to learn it. While a call
 * waits it holds a thread and keeps the process alive; it can't be cancelled.
 * Buffers passed in must not be touched until it settles.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sysAsync } from "./sys.ts";
 *
 * const nothing = new Uint8Array(8); // room for one pollfd; count 0 watches none
 * assert.equal(await sysAsync.poll(nothing, 0, 0), 0);
 * ```
 */
export const sysAsync = {
  /** `poll(pollfds, count, timeoutMs)` on a worker thread → ready count or -1. */
  poll(pollfds: Uint8Array, count: number, timeoutMs: number): Promise<number> {
    return libc().poll_async(pollfds, BigInt(count), timeoutMs);
  },
  /** `epoll_wait(epfd, events, maxEvents, timeoutMs)` on a worker thread → count or -1. */
  epoll_wait(
    epfd: number,
    events: Uint8Array,
    maxEvents: number,
    timeoutMs: number,
  ): Promise<number> {
    return libc().epoll_wait_async(epfd, events, maxEvents, timeoutMs);
  },
};
