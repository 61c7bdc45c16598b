/**
 * Typed Deno FFI bindings to the Linux C library (glibc, `libc.so.6`) for the
 * socket lessons: raw descriptors, non-blocking I/O, `poll`, `select`, `epoll`
 * and resource limits, without Deno's own networking in between. Import it as
 * `"workbook/libc"`.
 *
 * Two layers:
 *
 * - {@linkcode sys}: one function per libc call, returning `{ value, errno }`
 *   exactly as C would see them (`value === -1` means failure). Nothing thrown.
 * - Friendly wrappers ({@linkcode accept}, {@linkcode read}, {@linkcode poll}, ...)
 *   that throw {@linkcode ErrnoError}, except where "not ready yet" is a normal
 *   answer on a non-blocking descriptor: {@linkcode accept}, {@linkcode read},
 *   {@linkcode write} and {@linkcode send} return `null` for EAGAIN/EWOULDBLOCK.
 *
 * Blocking: the sync functions run on the JavaScript thread, so a blocking
 * `accept` or `read` freezes every timer and promise — that is the lesson on
 * blocking I/O. {@linkcode pollAsync} and {@linkcode epollWaitAsync} wait on a
 * Deno FFI worker thread (`nonblocking: true` symbols) instead.
 *
 * errno and threads: errno is thread-local. After a sync call the bindings
 * read the JS thread's errno through the pointer `__errno_location()` gave
 * once. A threaded call sets errno on whichever pool thread ran it, so the
 * async waits only use the ready count; if a threaded wait returns -1, it is
 * repeated synchronously with a zero timeout, which either throws with the
 * true errno (EBADF, EINVAL, ...) or returns fresh readiness (the failure was
 * a transient EINTR). The call that moves data or creates the descriptor
 * always runs sync, once the descriptor is ready, so its errno is exact.
 *
 * The modules behind this entry, one topic each:
 *
 * | module           | what                                                   |
 * | ---------------- | ------------------------------------------------------ |
 * | `library.ts`     | the symbol table, `dlopen` on first use, errno, {@linkcode ffiAvailable} |
 * | `sys.ts`         | the raw layer {@linkcode sys}                          |
 * | `errno.ts`       | errno numbers, {@linkcode errnoName}, {@linkcode ErrnoError} |
 * | `sockaddr.ts`    | `struct sockaddr_in`/`sockaddr_in6` encoding           |
 * | `descriptors.ts` | read, write, close, pipe, `fcntl` and O_NONBLOCK       |
 * | `socket.ts`      | TCP sockets: bind, listen, connect, accept, send, options |
 * | `poll.ts`        | `poll`, sync and on a worker thread                    |
 * | `select.ts`      | `select` and {@linkcode FdSet}                         |
 * | `epoll.ts`       | `epoll_create1`, `epoll_ctl`, `epoll_wait`             |
 * | `rlimit.ts`      | `getrlimit`/`setrlimit` for RLIMIT_NOFILE              |
 *
 * `libc.so.6` is opened once and kept: as this module loads when FFI is
 * already allowed (so the test sanitizer never sees it opened inside a test),
 * else on first use. Importing never asks for a permission. Check
 * {@linkcode ffiAvailable} first to skip cleanly on other systems.
 * Needs `--allow-ffi`; FFI bypasses `--allow-net`, so {@linkcode bind} refuses
 * anything but loopback unless the program was started with `--public`.
 *
 * @example A connection, end to end, without Deno's networking
 * ```ts
 * import assert from "node:assert/strict";
 * import { accept, close, connectTcp, listenTcp, read, send } from "workbook/libc";
 *
 * const server = listenTcp({ port: 0 });
 * const client = connectTcp("127.0.0.1", server.port);
 * const conn = accept(server.fd)!; // blocking listener: the client is already queued
 * send(client, new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(16);
 * const n = read(conn, buffer)!;
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n)), "hi");
 * for (const fd of [client, conn, server.fd]) close(fd);
 * ```
 *
 * @module
 */
export { type FfiAvailability, ffiAvailable } from "./library.ts";
export { sys, type SysResult } from "./sys.ts";
export {
  EADDRINUSE,
  EAGAIN,
  EBADF,
  ECONNABORTED,
  ECONNRESET,
  EINTR,
  EINVAL,
  EMFILE,
  ENFILE,
  ENOENT,
  ENOTSOCK,
  EPIPE,
  ErrnoError,
  errnoName,
  ETIMEDOUT,
  EWOULDBLOCK,
} from "./errno.ts";
export { AF_INET, AF_INET6, type SocketAddress } from "./sockaddr.ts";
export {
  close,
  type DescriptorOptions,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFL,
  F_SETFL,
  isFdOpen,
  isNonBlocking,
  O_NONBLOCK,
  pipe,
  read,
  setNonBlocking,
  write,
} from "./descriptors.ts";
export {
  accept,
  bind,
  type ConnectOptions,
  connectTcp,
  createTcpSocket,
  getpeername,
  getsockname,
  listen,
  type Listener,
  type ListenOptions,
  listenTcp,
  send,
  setLinger,
  setReuseAddress,
  setSocketOption,
  SHUT_WR,
  shutdown,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  socketPair,
  SOL_SOCKET,
} from "./socket.ts";
export {
  poll,
  pollAsync,
  POLLERR,
  POLLFD_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type PollRequest,
} from "./poll.ts";
export {
  FD_SET_BYTES,
  FD_SETSIZE,
  FdSet,
  select,
  type SelectResult,
  TIMEVAL_SIZE,
} from "./select.ts";
export {
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  epollCreate,
  epollCtl,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  type EpollReady,
  epollWait,
  epollWaitAsync,
} from "./epoll.ts";
export { getrlimit, raiseFileLimit, type ResourceLimit, setrlimit } from "./rlimit.ts";
