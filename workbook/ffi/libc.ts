/**
 * Typed Deno FFI bindings to the Linux C library (glibc, `libc.so.6`) for the
 * socket lessons: raw descriptors, non-blocking I/O, `poll`, `select`, `epoll`
 * and resource limits, without Deno's own networking in between.
 *
 * Two layers:
 *
 * - {@linkcode sys}: one function per libc call, returning `{ value, errno }`
 *   exactly as C would see them (`value === -1` means failure). Nothing thrown.
 * - Friendly wrappers ({@linkcode accept}, {@linkcode read}, {@linkcode poll}, ...)
 *   that throw {@linkcode ErrnoError}, except where "not ready yet" is a normal
 *   answer on a non-blocking descriptor: {@linkcode accept}, {@linkcode read},
 *   {@linkcode recv}, {@linkcode write} and {@linkcode send} return `null` for
 *   EAGAIN/EWOULDBLOCK, and {@linkcode connect} returns `"inProgress"` for
 *   EINPROGRESS.
 *
 * Blocking: the sync functions run on the JavaScript thread, so a blocking
 * `accept` or `read` freezes every timer and promise — that is the lesson on
 * blocking I/O. The `...Async` functions wait on a Deno FFI worker thread
 * (`nonblocking: true` symbols) instead.
 *
 * errno and threads: errno is thread-local. After a sync call we read the JS
 * thread's errno through the pointer `__errno_location()` gave us once. A
 * threaded call sets errno on whichever pool thread ran it (Deno uses several),
 * and a later `__errno_location()` call may run on another one, so that errno
 * can't be read reliably. Hence {@linkcode sysAsync} returns bare numbers, and
 * the friendly async functions only use threaded `poll`/`epoll_wait`, whose
 * counts suffice; the call that moves data or creates the descriptor runs sync
 * once the descriptor is ready (so errno is exact). If a threaded wait returns
 * -1, the wrapper repeats it synchronously with a zero timeout: that either
 * throws with the true errno (EBADF, EINVAL, ...) or returns fresh readiness
 * (the failure was a transient EINTR).
 *
 * SIGPIPE: Deno, like most Rust programs, starts with SIGPIPE ignored, so a
 * write to a reset connection already fails with EPIPE instead of killing the
 * process. {@linkcode send} adds `MSG_NOSIGNAL` anyway, so the code stays
 * correct where the signal is not ignored (see {@linkcode sigpipeDisposition}).
 *
 * Layout notes: both supported CPUs are little-endian and LP64 (`long`,
 * `size_t`, `rlim_t`, `time_t` are 64-bit). `struct epoll_event` differs:
 * packed to 12 bytes on x86_64, 16 bytes (4 bytes padding before `data`) on
 * aarch64; see {@linkcode EPOLL_EVENT_SIZE}.
 *
 * Nothing is loaded at import time: {@linkcode libc} opens `libc.so.6` on first
 * use and caches it. Check {@linkcode ffiAvailable} first to skip cleanly on
 * other systems; in test files call it at top level, outside any test, so the
 * resource sanitizer doesn't see the library handle as a leak (see
 * {@linkcode closeLibc}). Needs `--allow-ffi`; FFI bypasses `--allow-net`, so these
 * sockets are not limited to the hosts that flag allows.
 *
 * @example
 * ```ts
 * import { accept, close, connectTcp, listenTcp, read, send } from "./libc.ts";
 *
 * const server = listenTcp({ port: 0 });
 * const client = connectTcp("127.0.0.1", server.port);
 * const conn = accept(server.fd)!; // blocking listener: waits for the client (already queued)
 * send(client, new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(16);
 * const n = read(conn, buffer)!;
 * console.log(new TextDecoder().decode(buffer.subarray(0, n))); // "hi"
 * for (const fd of [client, conn, server.fd]) close(fd);
 * ```
 *
 * @module
 */
import { isLoopbackHost, publicBindAllowed, withoutBrackets } from "../toolkit/program.ts";

// ---------------------------------------------------------------------------
// Platform and loading
// ---------------------------------------------------------------------------

/** The shared object opened by {@linkcode libc}: glibc's stable soname. */
export const LIBC_PATH = "libc.so.6";

const IS_X86_64 = Deno.build.arch === "x86_64";

/**
 * The libc functions this module binds, as passed to `Deno.dlopen`. `*_async`
 * entries are the same C functions marked `nonblocking: true`: Deno runs them
 * on a worker thread and returns a Promise.
 *
 * @example
 * ```ts
 * import { LIBC_SYMBOLS } from "./libc.ts";
 *
 * console.log(LIBC_SYMBOLS.accept4.parameters); // ["i32", "buffer", "buffer", "i32"]
 * ```
 */
export const LIBC_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // fcntl is variadic; its third argument is read as a full machine word, so
  // pass 64 bits (an i32 would leave the upper half of the register undefined).
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  select: { parameters: ["i32", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  accept4_async: {
    name: "accept4",
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  read_async: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The raw symbol table returned by {@linkcode libc}. */
export type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/** Whether the bindings can be used here, and if not, why. */
export type FfiAvailability = { ok: true } | { ok: false; reason: string };

let library: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | null = null;
/** View of the JS thread's errno (an `int` in thread-local storage). */
let errnoView: Deno.UnsafePointerView | null = null;
let availability: FfiAvailability | null = null;

function platformProblem(): string | null {
  if (Deno.build.os !== "linux") {
    return `the libc FFI bindings need Linux; this is ${Deno.build.os}/${Deno.build.arch}`;
  }
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `the libc FFI bindings know struct layouts for x86_64 and aarch64 only, not ${Deno.build.arch}`;
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state === "denied") {
    return "FFI permission is denied: run with --allow-ffi";
  }
  return null;
}

/**
 * Opens `libc.so.6` on first use and returns its symbols (later calls reuse
 * the handle). Throws with {@linkcode ffiAvailable}'s reason if it can't.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 *
 * const fd = libc().socket(2, 1, 0); // AF_INET, SOCK_STREAM: the raw C call
 * console.log(fd >= 0);
 * libc().close(fd);
 * ```
 */
export function libc(): LibcSymbols {
  if (library !== null) return library.symbols;
  const problem = platformProblem();
  if (problem !== null) throw new Error(problem);
  let opened: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;
  try {
    opened = Deno.dlopen(LIBC_PATH, LIBC_SYMBOLS);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open ${LIBC_PATH} (glibc is required): ${why}`, { cause: error });
  }
  // The errno address is fixed per thread, and sync FFI calls always run on
  // this (the JS) thread, so one lookup serves every later read.
  const errnoPointer = opened.symbols.__errno_location();
  if (errnoPointer === null) {
    opened.close();
    throw new Error("__errno_location() returned NULL");
  }
  errnoView = new Deno.UnsafePointerView(errnoPointer);
  library = opened;
  return opened.symbols;
}

/**
 * Says whether the bindings work here: Linux on x86_64/aarch64, FFI allowed,
 * `libc.so.6` loadable. Opens the library on success (and caches the answer),
 * so test files can call it at top level and pass `ignore: !ok` to tests.
 *
 * @example
 * ```ts
 * import { ffiAvailable } from "./libc.ts";
 *
 * const ffi = ffiAvailable();
 * if (!ffi.ok) console.log(`skipping FFI lessons: ${ffi.reason}`);
 * ```
 */
export function ffiAvailable(): FfiAvailability {
  if (availability !== null) return availability;
  try {
    libc();
    availability = { ok: true };
  } catch (error) {
    availability = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  return availability;
}

/**
 * Closes the cached library handle; the next call to {@linkcode libc} reopens
 * it. Never call it while an `...Async` call is in flight.
 *
 * Tests: with `sanitizeResources: true` in deno.json (as in this workbook) the
 * test sanitizer tracks the `DynamicLibrary` handle, so a first use inside a
 * test counts as a leak, and closing it in a test that did not open it does
 * too. Call {@linkcode ffiAvailable} at the top level of the test file (before
 * any test) and leave the handle open, or close it in a last test declared with
 * `sanitizeResources: false`.
 *
 * @example
 * ```ts
 * import { closeLibc, libc } from "./libc.ts";
 *
 * libc();
 * closeLibc(); // e.g. at the end of a program that is done with raw sockets
 * ```
 */
export function closeLibc(): void {
  library?.close();
  library = null;
  errnoView = null;
  availability = null;
}

// ---------------------------------------------------------------------------
// errno
// ---------------------------------------------------------------------------

/** Operation not permitted. */
export const EPERM = 1;
/** No such file or directory. */
export const ENOENT = 2;
/** A signal interrupted the call before it did anything; retry it. */
export const EINTR = 4;
/** Not an open descriptor (closed already, or never opened). */
export const EBADF = 9;
/** Non-blocking descriptor: the call would have to wait. Try later. */
export const EAGAIN = 11;
/** Same number as {@linkcode EAGAIN} on Linux; POSIX allows either name. */
export const EWOULDBLOCK: number = EAGAIN;
/** Out of kernel memory. */
export const ENOMEM = 12;
/** Permission denied (e.g. binding a port below 1024). */
export const EACCES = 13;
/** A pointer argument pointed outside the process's memory. */
export const EFAULT = 14;
/** An argument is invalid (e.g. `epoll_wait` on something that is not an epoll fd). */
export const EINVAL = 22;
/** The whole system is out of descriptors. */
export const ENFILE = 23;
/** This process hit its descriptor limit (`RLIMIT_NOFILE`). */
export const EMFILE = 24;
/** Writing to a connection whose other end has gone (would raise SIGPIPE). */
export const EPIPE = 32;
/** A socket call on something that is not a socket. */
export const ENOTSOCK = 88;
/** Address family not supported by the socket. */
export const EAFNOSUPPORT = 97;
/** Some socket is already bound (or listening) on that address and port. */
export const EADDRINUSE = 98;
/** The address is not one of this machine's. */
export const EADDRNOTAVAIL = 99;
/** No route to the network. */
export const ENETUNREACH = 101;
/** A queued connection was aborted before `accept` took it. */
export const ECONNABORTED = 103;
/** The peer reset the connection (sent RST). */
export const ECONNRESET = 104;
/** The socket is already connected. */
export const EISCONN = 106;
/** The socket is not connected. */
export const ENOTCONN = 107;
/** The operation timed out. */
export const ETIMEDOUT = 110;
/** Nobody listens on that address and port (the peer answered RST to SYN). */
export const ECONNREFUSED = 111;
/** A non-blocking `connect` is already under way. */
export const EALREADY = 114;
/** Non-blocking `connect` started; wait for writability, then read `SO_ERROR`. */
export const EINPROGRESS = 115;

const ERRNO_NAMES: Record<number, string> = {
  [EPERM]: "EPERM",
  [ENOENT]: "ENOENT",
  3: "ESRCH",
  [EINTR]: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  [EBADF]: "EBADF",
  10: "ECHILD",
  [EAGAIN]: "EAGAIN",
  [ENOMEM]: "ENOMEM",
  [EACCES]: "EACCES",
  [EFAULT]: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  [EINVAL]: "EINVAL",
  [ENFILE]: "ENFILE",
  [EMFILE]: "EMFILE",
  25: "ENOTTY",
  28: "ENOSPC",
  29: "ESPIPE",
  [EPIPE]: "EPIPE",
  34: "ERANGE",
  38: "ENOSYS",
  71: "EPROTO",
  75: "EOVERFLOW",
  [ENOTSOCK]: "ENOTSOCK",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  [EAFNOSUPPORT]: "EAFNOSUPPORT",
  [EADDRINUSE]: "EADDRINUSE",
  [EADDRNOTAVAIL]: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  [ENETUNREACH]: "ENETUNREACH",
  [ECONNABORTED]: "ECONNABORTED",
  [ECONNRESET]: "ECONNRESET",
  105: "ENOBUFS",
  [EISCONN]: "EISCONN",
  [ENOTCONN]: "ENOTCONN",
  108: "ESHUTDOWN",
  [ETIMEDOUT]: "ETIMEDOUT",
  [ECONNREFUSED]: "ECONNREFUSED",
  112: "EHOSTDOWN",
  113: "EHOSTUNREACH",
  [EALREADY]: "EALREADY",
  [EINPROGRESS]: "EINPROGRESS",
  125: "ECANCELED",
};

/**
 * The symbolic name of an errno value, e.g. `"EAGAIN"` for 11 (Linux numbering;
 * EWOULDBLOCK shares EAGAIN's number). Unknown values give `"ERRNO_<n>"`.
 *
 * @example
 * ```ts
 * import { EINPROGRESS, errnoName } from "./libc.ts";
 *
 * console.log(errnoName(EINPROGRESS)); // "EINPROGRESS"
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
 * import { ECONNRESET, strerror } from "./libc.ts";
 *
 * console.log(strerror(ECONNRESET)); // "Connection reset by peer"
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
 * import { close, ErrnoError } from "./libc.ts";
 *
 * try {
 *   close(999_999); // no such descriptor
 * } catch (error) {
 *   if (error instanceof ErrnoError) console.log(error.syscall, error.code); // close EBADF
 * }
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

// ---------------------------------------------------------------------------
// Constants: sockets, fcntl, poll, epoll, limits (same values on x86_64 and aarch64)
// ---------------------------------------------------------------------------

/** Local (Unix-domain) sockets, as used by {@linkcode socketPair}. */
export const AF_UNIX = 1;
/** IPv4. */
export const AF_INET = 2;
/** IPv6. */
export const AF_INET6 = 10;
/** A reliable byte stream: TCP for {@linkcode AF_INET}. */
export const SOCK_STREAM = 1;
/** Datagrams: UDP for {@linkcode AF_INET}. */
export const SOCK_DGRAM = 2;
/** Type flag for `socket`/`accept4`/`socketpair`: create the fd non-blocking (0o4000). */
export const SOCK_NONBLOCK = 0o4000;
/** Type flag: close the fd in programs started with exec (0o2000000). */
export const SOCK_CLOEXEC = 0o2000000;
/** `setsockopt` level for generic socket options. */
export const SOL_SOCKET = 1;
/** `setsockopt` level for TCP options. */
export const IPPROTO_TCP = 6;
/** Allow binding a port that still has connections in TIME_WAIT. */
export const SO_REUSEADDR = 2;
/** Read-and-clear the pending error (how a non-blocking `connect` reports failure). */
export const SO_ERROR = 4;
/** Send buffer size. */
export const SO_SNDBUF = 7;
/** Receive buffer size. */
export const SO_RCVBUF = 8;
/** `struct linger`: with a 0 s timeout, `close` sends RST instead of FIN. */
export const SO_LINGER = 13;
/** Several sockets may bind the same port; the kernel spreads connections. */
export const SO_REUSEPORT = 15;
/** `IPPROTO_TCP` option: send small writes at once (no Nagle delay). */
export const TCP_NODELAY = 1;
/** `shutdown`: no more reading. */
export const SHUT_RD = 0;
/** `shutdown`: no more writing; the peer reads EOF (sends FIN). */
export const SHUT_WR = 1;
/** `shutdown`: both directions. */
export const SHUT_RDWR = 2;
/** `recv` flag: look at the data without removing it. */
export const MSG_PEEK = 2;
/** `send`/`recv` flag: this one call is non-blocking. */
export const MSG_DONTWAIT = 0x40;
/** `send` flag: fail with EPIPE instead of raising SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;

/** `fcntl`: duplicate to the lowest free fd >= the argument. */
export const F_DUPFD = 0;
/** `fcntl`: read descriptor flags (`FD_CLOEXEC`). */
export const F_GETFD = 1;
/** `fcntl`: set descriptor flags. */
export const F_SETFD = 2;
/** `fcntl`: read file status flags (`O_NONBLOCK`, ...). */
export const F_GETFL = 3;
/** `fcntl`: set file status flags. */
export const F_SETFL = 4;
/** `fcntl`: like `F_DUPFD`, with close-on-exec set on the copy. */
export const F_DUPFD_CLOEXEC = 1030;
/** Descriptor flag: close on exec. */
export const FD_CLOEXEC = 1;
/** Status flag: calls that would wait fail with EAGAIN instead (0o4000). */
export const O_NONBLOCK = 0o4000;
/** Open flag: close on exec (0o2000000); also `pipe2`'s flag. */
export const O_CLOEXEC = 0o2000000;

/** `poll`: there is data to read (or EOF, or a connection to accept). */
export const POLLIN = 0x1;
/** `poll`: urgent (out-of-band) data. */
export const POLLPRI = 0x2;
/** `poll`: writing will not block. */
export const POLLOUT = 0x4;
/** `poll` result only: an error is pending (read it with `SO_ERROR` or a failing call). */
export const POLLERR = 0x8;
/** `poll` result only: hung up (both directions closed, or connection reset). */
export const POLLHUP = 0x10;
/** `poll` result only: the fd is not open. */
export const POLLNVAL = 0x20;
/** `poll`: the peer shut down its writing side (Linux-specific). */
export const POLLRDHUP = 0x2000;

/** `epoll`: readable. */
export const EPOLLIN = 0x1;
/** `epoll`: urgent data. */
export const EPOLLPRI = 0x2;
/** `epoll`: writable. */
export const EPOLLOUT = 0x4;
/** `epoll`: error pending (always reported, no need to ask). */
export const EPOLLERR = 0x8;
/** `epoll`: hang-up (always reported, no need to ask). */
export const EPOLLHUP = 0x10;
/** `epoll`: the peer shut down its writing side. */
export const EPOLLRDHUP = 0x2000;
/** `epoll`: wake only one of several epoll sets waiting on the same fd. */
export const EPOLLEXCLUSIVE = 0x10000000;
/** `epoll`: report once, then disarm until `EPOLL_CTL_MOD` re-arms. */
export const EPOLLONESHOT = 0x40000000;
/** `epoll`: edge-triggered — report changes, not states; drain until EAGAIN. (1 << 31, unsigned.) */
export const EPOLLET = 0x80000000;
/** `epoll_ctl`: start watching an fd. */
export const EPOLL_CTL_ADD = 1;
/** `epoll_ctl`: stop watching an fd. */
export const EPOLL_CTL_DEL = 2;
/** `epoll_ctl`: change the events watched (and re-arm a oneshot). */
export const EPOLL_CTL_MOD = 3;
/** `epoll_create1` flag: close on exec. */
export const EPOLL_CLOEXEC: number = O_CLOEXEC;

/** `getrlimit`/`setrlimit` resource: max open descriptors (7 on x86_64 and aarch64). */
export const RLIMIT_NOFILE = 7;
/** The "no limit" value of `rlim_t` (all 64 bits set); {@linkcode getrlimit} shows it as Infinity. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
/** Signal raised by writing to a broken pipe or connection. */
export const SIGPIPE = 13;

/** Bits in an `fd_set`: `select` can't watch descriptors >= this. */
export const FD_SETSIZE = 1024;
/** `sizeof(fd_set)`: 1024 bits as sixteen 64-bit `long` words. */
export const FD_SET_BYTES = FD_SETSIZE / 8;
/** `sizeof(struct sockaddr_in)`. */
export const SOCKADDR_IN_SIZE = 16;
/** `sizeof(struct sockaddr_in6)`: family, port, flow info, 16-byte address, scope id. */
export const SOCKADDR_IN6_SIZE = 28;
/** `sizeof(struct pollfd)`: `int fd; short events; short revents;`. */
export const POLLFD_SIZE = 8;
/** `sizeof(struct timeval)`: 64-bit seconds and microseconds. */
export const TIMEVAL_SIZE = 16;
/** `sizeof(struct rlimit)`: 64-bit soft and hard limits. */
export const RLIMIT_SIZE = 16;
/** `sizeof(struct sigaction)` in glibc on x86_64 and aarch64. */
export const SIGACTION_SIZE = 152;
/**
 * `sizeof(struct epoll_event)`: 12 on x86_64, where glibc and the kernel pack
 * it (`u32 events; u64 data` without padding), 16 on aarch64, where `data` is
 * 8-byte aligned.
 */
export const EPOLL_EVENT_SIZE = IS_X86_64 ? 12 : 16;
/** Byte offset of `data` in `struct epoll_event`: 4 on x86_64, 8 on aarch64. */
export const EPOLL_DATA_OFFSET = IS_X86_64 ? 4 : 8;

// ---------------------------------------------------------------------------
// Raw layer
// ---------------------------------------------------------------------------

/** What a libc call returned, and errno when it returned -1 (0 otherwise). */
export interface SysResult {
  /** The C return value; -1 means failure. */
  value: number;
  /** errno right after the call if `value` is -1, else 0. */
  errno: number;
}

function symbols(): LibcSymbols {
  return library === null ? libc() : library.symbols;
}

/** Wraps a return value, reading errno immediately if it signals failure. */
function result(value: number): SysResult {
  return { value, errno: value === -1 ? errnoView!.getInt32() : 0 };
}

/**
 * The raw calls: C argument order, buffers as `Uint8Array`s, `NULL` as `null`,
 * and `{ value, errno }` results. Nothing throws and nothing retries: this is
 * the layer for showing exactly what the kernel says.
 *
 * @example
 * ```ts
 * import { AF_INET, EAGAIN, encodeSockaddrIn, SOCK_NONBLOCK, SOCK_STREAM, sys } from "./libc.ts";
 *
 * const { value: fd } = sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
 * sys.bind(fd, encodeSockaddrIn("127.0.0.1", 0));
 * sys.listen(fd, 16);
 * const { value, errno } = sys.accept4(fd, null, null, 0); // nobody has connected
 * console.log(value, errno === EAGAIN); // -1 true
 * sys.close(fd);
 * ```
 */
export const sys = {
  /** `socket(domain, type, protocol)` → new fd. */
  socket(domain: number, type: number, protocol = 0): SysResult {
    return result(symbols().socket(domain, type, protocol));
  },
  /** `socketpair(domain, type, protocol, sv)`: writes the two fds into `sv`. */
  socketpair(domain: number, type: number, protocol: number, sv: Int32Array): SysResult {
    return result(symbols().socketpair(domain, type, protocol, sv));
  },
  /** `pipe2(fds, flags)`: `fds[0]` is the read end, `fds[1]` the write end. */
  pipe2(fds: Int32Array, flags: number): SysResult {
    return result(symbols().pipe2(fds, flags));
  },
  /** `setsockopt(fd, level, name, value, value.byteLength)`. */
  setsockopt(fd: number, level: number, name: number, value: BufferSource): SysResult {
    return result(symbols().setsockopt(fd, level, name, value, value.byteLength));
  },
  /** `getsockopt(fd, level, name, value, length)`: `length[0]` in = room, out = size. */
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: BufferSource,
    length: Uint32Array,
  ): SysResult {
    return result(symbols().getsockopt(fd, level, name, value, length));
  },
  /** `bind(fd, address, address.byteLength)`. */
  bind(fd: number, address: Uint8Array): SysResult {
    return result(symbols().bind(fd, address, address.byteLength));
  },
  /** `connect(fd, address, address.byteLength)`. */
  connect(fd: number, address: Uint8Array): SysResult {
    return result(symbols().connect(fd, address, address.byteLength));
  },
  /** `listen(fd, backlog)`. */
  listen(fd: number, backlog: number): SysResult {
    return result(symbols().listen(fd, backlog));
  },
  /** `accept4(fd, address, length, flags)`; pass `null`s to skip the peer address. */
  accept4(
    fd: number,
    address: Uint8Array | null,
    length: Uint32Array | null,
    flags: number,
  ): SysResult {
    return result(symbols().accept4(fd, address, length, flags));
  },
  /** `getsockname(fd, address, length)`. */
  getsockname(fd: number, address: Uint8Array, length: Uint32Array): SysResult {
    return result(symbols().getsockname(fd, address, length));
  },
  /** `getpeername(fd, address, length)`. */
  getpeername(fd: number, address: Uint8Array, length: Uint32Array): SysResult {
    return result(symbols().getpeername(fd, address, length));
  },
  /** `fcntl(fd, command, argument)`. */
  fcntl(fd: number, command: number, argument = 0): SysResult {
    return result(symbols().fcntl(fd, command, BigInt(argument)));
  },
  /** `read(fd, buffer, buffer.byteLength)` → bytes read, 0 at EOF. */
  read(fd: number, buffer: Uint8Array): SysResult {
    return result(Number(symbols().read(fd, buffer, BigInt(buffer.byteLength))));
  },
  /** `write(fd, buffer, buffer.byteLength)` → bytes written. Raises SIGPIPE unless ignored. */
  write(fd: number, buffer: Uint8Array): SysResult {
    return result(Number(symbols().write(fd, buffer, BigInt(buffer.byteLength))));
  },
  /** `recv(fd, buffer, buffer.byteLength, flags)`. */
  recv(fd: number, buffer: Uint8Array, flags: number): SysResult {
    return result(Number(symbols().recv(fd, buffer, BigInt(buffer.byteLength), flags)));
  },
  /** `send(fd, buffer, buffer.byteLength, flags)`; add `MSG_NOSIGNAL` yourself here. */
  send(fd: number, buffer: Uint8Array, flags: number): SysResult {
    return result(Number(symbols().send(fd, buffer, BigInt(buffer.byteLength), flags)));
  },
  /** `shutdown(fd, how)`. */
  shutdown(fd: number, how: number): SysResult {
    return result(symbols().shutdown(fd, how));
  },
  /** `close(fd)`. */
  close(fd: number): SysResult {
    return result(symbols().close(fd));
  },
  /** `poll(pollfds, count, timeoutMs)` over `count` 8-byte `struct pollfd`s. */
  poll(pollfds: Uint8Array, count: number, timeoutMs: number): SysResult {
    return result(symbols().poll(pollfds, BigInt(count), timeoutMs));
  },
  /** `select(nfds, read, write, except, timeout)`; `fd_set`s are 128-byte arrays. */
  select(
    nfds: number,
    readSet: Uint8Array | null,
    writeSet: Uint8Array | null,
    exceptSet: Uint8Array | null,
    timeout: Uint8Array | null,
  ): SysResult {
    return result(symbols().select(nfds, readSet, writeSet, exceptSet, timeout));
  },
  /** `epoll_create1(flags)` → epoll fd. */
  epoll_create1(flags: number): SysResult {
    return result(symbols().epoll_create1(flags));
  },
  /** `epoll_ctl(epfd, op, fd, event)`; `event` is one `EPOLL_EVENT_SIZE` record or null. */
  epoll_ctl(epfd: number, op: number, fd: number, event: Uint8Array | null): SysResult {
    return result(symbols().epoll_ctl(epfd, op, fd, event));
  },
  /** `epoll_wait(epfd, events, maxEvents, timeoutMs)` → ready count. */
  epoll_wait(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): SysResult {
    return result(symbols().epoll_wait(epfd, events, maxEvents, timeoutMs));
  },
  /** `getrlimit(resource, limit)`; `limit` is `[soft, hard]`. */
  getrlimit(resource: number, limit: BigUint64Array): SysResult {
    return result(symbols().getrlimit(resource, limit));
  },
  /** `setrlimit(resource, limit)`. */
  setrlimit(resource: number, limit: BigUint64Array): SysResult {
    return result(symbols().setrlimit(resource, limit));
  },
  /** `sigaction(signal, action, previous)` with `SIGACTION_SIZE`-byte buffers. */
  sigaction(signal: number, action: Uint8Array | null, previous: Uint8Array | null): SysResult {
    return result(symbols().sigaction(signal, action, previous));
  },
};

/**
 * The blocking calls run on a Deno FFI worker thread: each returns a Promise
 * of the bare C return value. errno is NOT available (it was set on the worker
 * thread), so treat -1 as "failed, reason unknown". While a call waits, it
 * holds a thread and keeps the process alive; it can't be cancelled (closing
 * the fd from JS does not wake a blocked `read`/`accept` on Linux; `shutdown`
 * does, for sockets). Buffers passed in must not be touched until it settles.
 *
 * @example
 * ```ts
 * import { close, socketPair, sysAsync, write } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * const buffer = new Uint8Array(8);
 * const reading = sysAsync.read(right, buffer); // waits on a worker thread
 * write(left, new Uint8Array([1, 2, 3]));
 * console.log(await reading); // 3
 * close(left);
 * close(right);
 * ```
 */
export const sysAsync = {
  /** `accept4(fd, NULL, NULL, flags)` on a worker thread → new fd or -1. */
  accept4(fd: number, flags: number): Promise<number> {
    return symbols().accept4_async(fd, null, null, flags);
  },
  /** `read(fd, buffer, buffer.byteLength)` on a worker thread → bytes, 0 at EOF, or -1. */
  async read(fd: number, buffer: Uint8Array): Promise<number> {
    return Number(await symbols().read_async(fd, buffer, BigInt(buffer.byteLength)));
  },
  /** `poll(pollfds, count, timeoutMs)` on a worker thread → ready count or -1. */
  poll(pollfds: Uint8Array, count: number, timeoutMs: number): Promise<number> {
    return symbols().poll_async(pollfds, BigInt(count), timeoutMs);
  },
  /** `epoll_wait(epfd, events, maxEvents, timeoutMs)` on a worker thread → count or -1. */
  epoll_wait(
    epfd: number,
    events: Uint8Array,
    maxEvents: number,
    timeoutMs: number,
  ): Promise<number> {
    return symbols().epoll_wait_async(epfd, events, maxEvents, timeoutMs);
  },
};

// ---------------------------------------------------------------------------
// Friendly layer: shared helpers and scratch buffers
// ---------------------------------------------------------------------------

/** Returns the value, or throws an ErrnoError for -1. */
function check(syscall: string, r: SysResult, detail?: string): number {
  if (r.value === -1) throw new ErrnoError(syscall, r.errno, detail);
  return r.value;
}

/** Runs a call again while a signal interrupts it (EINTR). */
function retryInterrupted(call: () => SysResult): SysResult {
  for (;;) {
    const r = call();
    if (r.value !== -1 || r.errno !== EINTR) return r;
  }
}

function isWouldBlock(errno: number): boolean {
  return errno === EAGAIN || errno === EWOULDBLOCK;
}

// Scratch buffers for sync calls. The JS thread runs one sync call at a time,
// so sharing them is safe; threaded calls always get buffers of their own.
const intScratch = new Int32Array(1);
const lengthScratch = new Uint32Array(1);
const pairScratch = new Int32Array(2);
const addressScratch = new Uint8Array(SOCKADDR_IN6_SIZE);
const lingerScratch = new Int32Array(2);
const limitScratch = new BigUint64Array(2);
const timevalScratch = new BigInt64Array(2);
const timevalBytes = new Uint8Array(timevalScratch.buffer);
const sigactionScratch = new Uint8Array(SIGACTION_SIZE);
const epollCtlScratch = new Uint8Array(EPOLL_EVENT_SIZE);
const epollCtlView = new DataView(epollCtlScratch.buffer);

/** poll/epoll timeout argument: an int, -1 (or any negative/Infinity) = forever. */
function toTimeoutArgument(timeoutMs: number): number {
  if (timeoutMs < 0 || timeoutMs === Infinity || Number.isNaN(timeoutMs)) return -1;
  return Math.min(Math.ceil(timeoutMs), 0x7fff_ffff);
}

/** Milliseconds left until `deadline` as a timeout argument (`deadline` Infinity = forever). */
function remainingTimeout(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, Math.ceil(deadline - performance.now()));
}

function deadlineAfter(timeoutMs: number): number {
  return toTimeoutArgument(timeoutMs) < 0 ? Infinity : performance.now() + timeoutMs;
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

/** An IP address and port, e.g. `{ address: "127.0.0.1", port: 40231 }` or `{ address: "::1", … }`. */
export interface SocketAddress {
  /** Dotted-quad IPv4 or textual IPv6 address (no brackets). */
  address: string;
  /** Port number, 0–65535. */
  port: number;
}

function parseIPv4(address: string): number[] {
  const parts = address.split(".");
  const octets = parts.map((part) => /^\d{1,3}$/.test(part) ? Number(part) : NaN);
  if (octets.length !== 4 || octets.some((octet) => !(octet <= 255))) {
    throw new TypeError(`expected a dotted IPv4 address like "127.0.0.1", got "${address}"`);
  }
  return octets;
}

/**
 * Builds a `struct sockaddr_in`: family (native byte order), port and address
 * in network byte order (big-endian), then 8 zero bytes.
 *
 * @param into reuse this 16-byte buffer instead of allocating one
 *
 * @example
 * ```ts
 * import { encodeSockaddrIn } from "./libc.ts";
 *
 * console.log(encodeSockaddrIn("127.0.0.1", 8080).subarray(0, 8)); // [2, 0, 31, 144, 127, 0, 0, 1]
 * ```
 */
export function encodeSockaddrIn(
  address: string,
  port: number,
  into: Uint8Array = new Uint8Array(SOCKADDR_IN_SIZE),
): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be a whole number from 0 to 65535, got ${port}`);
  }
  const octets = parseIPv4(address);
  into.fill(0, 0, SOCKADDR_IN_SIZE);
  const view = new DataView(into.buffer, into.byteOffset, SOCKADDR_IN_SIZE);
  view.setUint16(0, AF_INET, true); // sin_family: host order (little-endian here)
  view.setUint16(2, port, false); // sin_port: network order
  into.set(octets, 4); // sin_addr: network order is just the dotted order
  return into;
}

/**
 * Reads a `struct sockaddr_in` back into `{ address, port }`.
 *
 * @example
 * ```ts
 * import { decodeSockaddrIn, encodeSockaddrIn } from "./libc.ts";
 *
 * console.log(decodeSockaddrIn(encodeSockaddrIn("10.0.0.7", 443))); // { address: "10.0.0.7", port: 443 }
 * ```
 */
export function decodeSockaddrIn(bytes: Uint8Array): SocketAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  if (family !== AF_INET) {
    throw new TypeError(`not an IPv4 address (sa_family ${family}, expected AF_INET=${AF_INET})`);
  }
  return { address: bytes.subarray(4, 8).join("."), port: view.getUint16(2, false) };
}

/** True for an IPv6 address in text (it has a colon); brackets are allowed. */
export function isIPv6(address: string): boolean {
  return address.includes(":");
}

/** The address family a socket for `address` needs. */
function familyOf(address: string): typeof AF_INET | typeof AF_INET6 {
  return isIPv6(address) ? AF_INET6 : AF_INET;
}

function parseIPv6(text: string): Uint8Array {
  const address = withoutBrackets(text);
  const fail = () => new TypeError(`expected an IPv6 address like "::1", got "${text}"`);
  const halves = address.split("::");
  if (halves.length > 2) throw fail();
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) throw fail();
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) throw fail();
    const value = parseInt(group, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  });
  return bytes;
}

function formatIPv6(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.length).join(":")}`;
}

/**
 * Builds the socket address for `address` — a `struct sockaddr_in` for IPv4,
 * a `struct sockaddr_in6` for IPv6 (`localhost` is 127.0.0.1) — and returns
 * its bytes (a view of `into`).
 *
 * @example
 * ```ts
 * import { encodeSockaddr } from "./libc.ts";
 *
 * console.log(encodeSockaddr("::1", 8080).length); // 28
 * ```
 */
export function encodeSockaddr(
  address: string,
  port: number,
  into: Uint8Array = new Uint8Array(SOCKADDR_IN6_SIZE),
): Uint8Array {
  // libc has no resolver here (no getaddrinfo binding); the one name lesson programs use:
  if (address === "localhost") address = "127.0.0.1";
  if (!isIPv6(address)) return encodeSockaddrIn(address, port, into).subarray(0, SOCKADDR_IN_SIZE);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be a whole number from 0 to 65535, got ${port}`);
  }
  const octets = parseIPv6(address);
  into.fill(0, 0, SOCKADDR_IN6_SIZE);
  const view = new DataView(into.buffer, into.byteOffset, SOCKADDR_IN6_SIZE);
  view.setUint16(0, AF_INET6, true); // sin6_family: host order
  view.setUint16(2, port, false); // sin6_port: network order
  into.set(octets, 8); // sin6_addr, after the 4-byte flow info
  return into.subarray(0, SOCKADDR_IN6_SIZE);
}

/**
 * Reads a `struct sockaddr_in` or `struct sockaddr_in6` back into `{ address, port }`.
 *
 * @example
 * ```ts
 * import { decodeSockaddr, encodeSockaddr } from "./libc.ts";
 *
 * console.log(decodeSockaddr(encodeSockaddr("::1", 443))); // { address: "::1", port: 443 }
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): SocketAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(0, true) !== AF_INET6) return decodeSockaddrIn(bytes);
  return { address: formatIPv6(bytes.subarray(8, 24)), port: view.getUint16(2, false) };
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

/** Flags for calls that create descriptors. */
export interface DescriptorOptions {
  /** Create it non-blocking (`SOCK_NONBLOCK`/`O_NONBLOCK`). Default false. */
  nonBlocking?: boolean;
  /** Close it in child programs started with exec (`SOCK_CLOEXEC`). Default true. */
  closeOnExec?: boolean;
}

function creationFlags(options: DescriptorOptions): number {
  return (options.nonBlocking ? SOCK_NONBLOCK : 0) |
    (options.closeOnExec === false ? 0 : SOCK_CLOEXEC);
}

/**
 * `socket(AF_INET, SOCK_STREAM, 0)`: a new, unbound IPv4 TCP socket.
 *
 * @example
 * ```ts
 * import { close, createTcpSocket, isNonBlocking } from "./libc.ts";
 *
 * const fd = createTcpSocket({ nonBlocking: true });
 * console.log(isNonBlocking(fd)); // true
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
 * Sets an `int` socket option, e.g. `setSocketOption(fd, IPPROTO_TCP, TCP_NODELAY, 1)`.
 *
 * @example
 * ```ts
 * import { close, createTcpSocket, IPPROTO_TCP, setSocketOption, TCP_NODELAY } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * setSocketOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
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
 * import { close, createTcpSocket, getSocketOption, SO_RCVBUF, SOL_SOCKET } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * console.log(getSocketOption(fd, SOL_SOCKET, SO_RCVBUF) > 0); // true
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
 * import { close, createTcpSocket, setReuseAddress } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * setReuseAddress(fd);
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
 * import { close, createTcpSocket, setLinger } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * setLinger(fd, 0); // close() will send RST
 * close(fd);
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
 * import { close, createTcpSocket, socketError } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * console.log(socketError(fd)); // 0
 * close(fd);
 * ```
 */
export function socketError(fd: number): number {
  return getSocketOption(fd, SOL_SOCKET, SO_ERROR);
}

/**
 * `bind` to an IPv4 address and port (0 = let the kernel pick; see {@linkcode getsockname}).
 *
 * @example
 * ```ts
 * import { bind, close, createTcpSocket, getsockname } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * bind(fd, "127.0.0.1", 0);
 * console.log(getsockname(fd).port > 0); // true
 * close(fd);
 * ```
 */
export function bind(fd: number, address: string, port: number): void {
  // Deno's --allow-net does not cover FFI sockets, so the bindings keep the same promise.
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
 * import { bind, close, createTcpSocket, listen } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * bind(fd, "127.0.0.1", 0);
 * listen(fd, 64);
 * close(fd);
 * ```
 */
export function listen(fd: number, backlog = 128): void {
  check("listen", sys.listen(fd, backlog));
}

/** Options for {@linkcode listenTcp}. */
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

/** A listening socket and the address it really got. */
export interface Listener extends SocketAddress {
  /** The listening descriptor; {@linkcode close} it when done. */
  fd: number;
}

/**
 * socket + `SO_REUSEADDR` + bind + listen + getsockname in one call.
 *
 * @example
 * ```ts
 * import { close, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp({ port: 0, nonBlocking: true });
 * console.log(`listening on ${listener.address}:${listener.port}`);
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
 * for {@linkcode POLLOUT}, then check {@linkcode socketError}. Other failures
 * (ECONNREFUSED, ...) throw.
 *
 * @example
 * ```ts
 * import { close, connect, createTcpSocket, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp();
 * const fd = createTcpSocket({ nonBlocking: true });
 * console.log(connect(fd, "127.0.0.1", listener.port)); // "inProgress"
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

/** Options for {@linkcode connectTcp}. */
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
 * import { close, connectTcp, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp();
 * const fd = connectTcp("127.0.0.1", listener.port, { timeoutMs: 1000 });
 * close(fd);
 * close(listener.fd);
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
 * listener's O_NONBLOCK on Linux; ask for it with `nonBlocking`.
 *
 * @example
 * ```ts
 * import { accept, close, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp({ nonBlocking: true });
 * console.log(accept(listener.fd)); // null: nobody has connected
 * close(listener.fd);
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
 * The local address of an IPv4 socket — how to learn the port the kernel
 * picked after binding port 0.
 *
 * @example
 * ```ts
 * import { close, getsockname, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp({ port: 0 });
 * console.log(getsockname(listener.fd)); // { address: "127.0.0.1", port: 4xxxx }
 * close(listener.fd);
 * ```
 */
export function getsockname(fd: number): SocketAddress {
  return socketAddressOf("getsockname", fd);
}

/**
 * The remote address of a connected IPv4 socket (ENOTCONN if not connected).
 *
 * @example
 * ```ts
 * import { close, connectTcp, getpeername, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp();
 * const fd = connectTcp("127.0.0.1", listener.port);
 * console.log(getpeername(fd).port === listener.port); // true
 * close(fd);
 * close(listener.fd);
 * ```
 */
export function getpeername(fd: number): SocketAddress {
  return socketAddressOf("getpeername", fd);
}

/**
 * Turns O_NONBLOCK on or off (`fcntl` F_GETFL, then F_SETFL).
 *
 * @example
 * ```ts
 * import { close, createTcpSocket, isNonBlocking, setNonBlocking } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * setNonBlocking(fd, true);
 * console.log(isNonBlocking(fd)); // true
 * close(fd);
 * ```
 */
export function setNonBlocking(fd: number, on: boolean): void {
  const flags = check("fcntl", sys.fcntl(fd, F_GETFL), `F_GETFL fd ${fd}`);
  const wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (wanted !== flags) check("fcntl", sys.fcntl(fd, F_SETFL, wanted), `F_SETFL fd ${fd}`);
}

/**
 * Whether O_NONBLOCK is set on the descriptor.
 *
 * @example
 * ```ts
 * import { close, createTcpSocket, isNonBlocking } from "./libc.ts";
 *
 * const fd = createTcpSocket();
 * console.log(isNonBlocking(fd)); // false: sockets start blocking
 * close(fd);
 * ```
 */
export function isNonBlocking(fd: number): boolean {
  return (check("fcntl", sys.fcntl(fd, F_GETFL), `F_GETFL fd ${fd}`) & O_NONBLOCK) !== 0;
}

/** Shared shape of read/recv/write/send: bytes moved, `null` for EAGAIN, retry EINTR. */
function transfer(syscall: string, fd: number, call: () => SysResult): number | null {
  const r = retryInterrupted(call);
  if (r.value !== -1) return r.value;
  if (isWouldBlock(r.errno)) return null;
  throw new ErrnoError(syscall, r.errno, `fd ${fd}`);
}

/**
 * `read` into `buffer`: bytes read, `0` at end of stream (the peer closed or
 * shut down writing), `null` if nothing is there yet on a non-blocking fd.
 * On a blocking fd with no data it waits, freezing the JS thread.
 *
 * @example
 * ```ts
 * import { close, read, socketPair, write } from "./libc.ts";
 *
 * const [left, right] = socketPair({ nonBlocking: true });
 * const buffer = new Uint8Array(64);
 * console.log(read(right, buffer)); // null: nothing sent yet
 * write(left, new TextEncoder().encode("ping"));
 * console.log(read(right, buffer)); // 4
 * close(left);
 * console.log(read(right, buffer)); // 0: EOF
 * close(right);
 * ```
 */
export function read(fd: number, buffer: Uint8Array): number | null {
  return transfer("read", fd, () => sys.read(fd, buffer));
}

/**
 * `recv` with flags (e.g. {@linkcode MSG_PEEK}, {@linkcode MSG_DONTWAIT}).
 * Same results as {@linkcode read}. Sockets only.
 *
 * @example
 * ```ts
 * import { close, MSG_PEEK, recv, socketPair, write } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * write(left, new Uint8Array([7]));
 * const buffer = new Uint8Array(1);
 * console.log(recv(right, buffer, MSG_PEEK), recv(right, buffer)); // 1 1: peeked, then taken
 * close(left);
 * close(right);
 * ```
 */
export function recv(fd: number, buffer: Uint8Array, flags = 0): number | null {
  return transfer("recv", fd, () => sys.recv(fd, buffer, flags));
}

/**
 * `write` from `buffer`: bytes written (possibly fewer than asked), `null` if
 * the fd is non-blocking and full. For sockets prefer {@linkcode send}: a
 * `write` to a broken connection raises SIGPIPE unless it is ignored.
 *
 * @example
 * ```ts
 * import { close, pipe, write } from "./libc.ts";
 *
 * const [readEnd, writeEnd] = pipe();
 * console.log(write(writeEnd, new Uint8Array([1, 2, 3]))); // 3
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export function write(fd: number, buffer: Uint8Array): number | null {
  return transfer("write", fd, () => sys.write(fd, buffer));
}

/**
 * `send` with {@linkcode MSG_NOSIGNAL} always added, so writing to a reset
 * connection throws ErrnoError EPIPE (or ECONNRESET) instead of raising
 * SIGPIPE. Returns bytes sent (maybe partial) or `null` when a non-blocking
 * socket's buffer is full.
 *
 * @example
 * ```ts
 * import { close, send, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * console.log(send(left, new TextEncoder().encode("hello"))); // 5
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
 * import { close, read, shutdown, SHUT_WR, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * shutdown(left, SHUT_WR);
 * console.log(read(right, new Uint8Array(8))); // 0: EOF, though left is still open
 * close(left);
 * close(right);
 * ```
 */
export function shutdown(fd: number, how = SHUT_WR): void {
  check("shutdown", sys.shutdown(fd, how), `fd ${fd}`);
}

/**
 * `close`. Not retried on EINTR: Linux frees the fd number even then, and a
 * retry could close a descriptor someone else just got.
 *
 * @example
 * ```ts
 * import { close, createTcpSocket } from "./libc.ts";
 *
 * close(createTcpSocket());
 * ```
 */
export function close(fd: number): void {
  const r = sys.close(fd);
  if (r.value === -1 && r.errno !== EINTR) throw new ErrnoError("close", r.errno, `fd ${fd}`);
}

/**
 * True while `fd` names an open descriptor of this process: `fcntl(F_GETFD)`
 * fails with `EBADF` on anything else. How a grader sees that learner code
 * closed (or leaked) a raw descriptor.
 *
 * @example
 * ```ts
 * import { close, isFdOpen, pipe } from "./libc.ts";
 *
 * const [readEnd, writeEnd] = pipe();
 * close(readEnd);
 * console.log(isFdOpen(readEnd), isFdOpen(writeEnd)); // false true
 * close(writeEnd);
 * ```
 */
export function isFdOpen(fd: number): boolean {
  return sys.fcntl(fd, F_GETFD).errno !== EBADF;
}

/**
 * `pipe2`: a one-way channel, `[readEnd, writeEnd]`. Cheap idle descriptors
 * for benchmarks, and a wake-up channel for a thread stuck in `poll`.
 *
 * @example
 * ```ts
 * import { close, pipe } from "./libc.ts";
 *
 * const [readEnd, writeEnd] = pipe({ nonBlocking: true });
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export function pipe(options: DescriptorOptions = {}): [readEnd: number, writeEnd: number] {
  const flags = (options.nonBlocking ? O_NONBLOCK : 0) |
    (options.closeOnExec === false ? 0 : O_CLOEXEC);
  check("pipe2", sys.pipe2(pairScratch, flags));
  return [pairScratch[0], pairScratch[1]];
}

/**
 * `socketpair(AF_UNIX, SOCK_STREAM)`: two connected sockets, no port needed.
 *
 * @example
 * ```ts
 * import { close, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair({ nonBlocking: true });
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

// ---------------------------------------------------------------------------
// poll
// ---------------------------------------------------------------------------

/** One descriptor to watch, and the events to watch for (POLLIN | POLLOUT ...). */
export interface PollRequest {
  /** Descriptor; negative ones are skipped by the kernel (revents 0). */
  fd: number;
  /** Bit mask of {@linkcode POLLIN}, {@linkcode POLLOUT}, ... */
  events: number;
}

let pollScratch = new Uint8Array(POLLFD_SIZE * 16);

function encodePollfds(requests: readonly PollRequest[], into: Uint8Array): DataView {
  const view = new DataView(into.buffer, into.byteOffset, requests.length * POLLFD_SIZE);
  requests.forEach(({ fd, events }, i) => {
    view.setInt32(i * POLLFD_SIZE, fd, true);
    view.setInt16(i * POLLFD_SIZE + 4, events, true);
    view.setInt16(i * POLLFD_SIZE + 6, 0, true);
  });
  return view;
}

function decodeRevents(view: DataView, count: number): number[] {
  const revents = new Array<number>(count);
  for (let i = 0; i < count; i++) revents[i] = view.getUint16(i * POLLFD_SIZE + 6, true);
  return revents;
}

/**
 * `poll`: waits until one of the descriptors is ready or `timeoutMs` passes
 * (-1 = forever, 0 = just look), blocking the JS thread. Returns the `revents`
 * of each request, in order (0 = nothing happened). Unlike select, any fd number
 * works. Interrupted waits (EINTR) resume with the remaining time.
 *
 * @example
 * ```ts
 * import { close, poll, POLLIN, POLLOUT, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * const [leftReady, rightReady] = poll([{ fd: left, events: POLLOUT }, { fd: right, events: POLLIN }], 100);
 * console.log(leftReady === POLLOUT, rightReady); // true 0
 * close(left);
 * close(right);
 * ```
 */
export function poll(requests: readonly PollRequest[], timeoutMs: number): number[] {
  const bytes = requests.length * POLLFD_SIZE;
  if (pollScratch.byteLength < bytes) pollScratch = new Uint8Array(bytes);
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    const view = encodePollfds(requests, pollScratch);
    const r = sys.poll(pollScratch, requests.length, remainingTimeout(deadline));
    if (r.value !== -1) return decodeRevents(view, requests.length);
    if (r.errno !== EINTR) throw new ErrnoError("poll", r.errno);
  }
}

/**
 * {@linkcode poll} on an FFI worker thread: the event loop keeps running while
 * it waits. A -1 from the thread is re-checked with a synchronous zero-timeout
 * poll, so errors carry the right errno. The wait can't be cancelled and keeps
 * the process alive, so prefer finite timeouts (or watch a {@linkcode pipe} you
 * can write to).
 *
 * @example
 * ```ts
 * import { close, pollAsync, POLLIN, socketPair, write } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * const waiting = pollAsync([{ fd: right, events: POLLIN }], 1000);
 * setTimeout(() => write(left, new Uint8Array([1])), 10); // timers still run
 * console.log(await waiting); // [1]: POLLIN
 * close(left);
 * close(right);
 * ```
 */
export async function pollAsync(
  requests: readonly PollRequest[],
  timeoutMs: number,
): Promise<number[]> {
  // Own buffer: the worker thread writes into it while JS carries on.
  const buffer = new Uint8Array(Math.max(1, requests.length) * POLLFD_SIZE);
  const view = encodePollfds(requests, buffer);
  const count = await sysAsync.poll(buffer, requests.length, toTimeoutArgument(timeoutMs));
  // errno of the worker thread is out of reach: ask again here to learn it.
  if (count === -1) return poll(requests, 0);
  return decodeRevents(view, requests.length);
}

/** Options for the `...Async` socket helpers. */
export interface WaitOptions {
  /** Give up after this long with a `TimeoutError` DOMException. Default: wait forever. */
  timeoutMs?: number;
  /** Stop waiting (within {@linkcode ASYNC_WAIT_SLICE_MS}) when aborted; throws its reason. */
  signal?: AbortSignal;
}

/**
 * With an AbortSignal, the async helpers wait in slices this long, checking
 * the signal between slices: a worker-thread wait can't be interrupted.
 */
export const ASYNC_WAIT_SLICE_MS = 100;

/** Waits on a worker thread until `fd` reports one of `events` (or error/hang-up). */
async function waitReady(
  fd: number,
  events: number,
  syscall: string,
  options: WaitOptions,
): Promise<number> {
  const deadline = deadlineAfter(options.timeoutMs ?? -1);
  for (;;) {
    options.signal?.throwIfAborted();
    const remaining = remainingTimeout(deadline); // -1 = no deadline
    const slice = options.signal === undefined
      ? remaining
      : remaining < 0
      ? ASYNC_WAIT_SLICE_MS
      : Math.min(remaining, ASYNC_WAIT_SLICE_MS);
    const [revents] = await pollAsync([{ fd, events }], slice);
    if (revents !== 0) return revents;
    if (performance.now() >= deadline) {
      throw new DOMException(
        `${syscall}: fd ${fd} not ready within ${options.timeoutMs} ms`,
        "TimeoutError",
      );
    }
  }
}

/**
 * Like {@linkcode accept}, but waits for a connection without blocking the
 * event loop: a worker-thread poll for readability, then a sync `accept4`
 * (so errno is exact). Works on blocking and non-blocking listeners.
 *
 * @example
 * ```ts
 * import { acceptAsync, close, listenTcp } from "./libc.ts";
 *
 * const listener = listenTcp();
 * const accepting = acceptAsync(listener.fd, { timeoutMs: 2000 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
 * close(await accepting);
 * client.close();
 * close(listener.fd);
 * ```
 */
export async function acceptAsync(
  fd: number,
  options: DescriptorOptions & WaitOptions = {},
): Promise<number> {
  for (;;) {
    await waitReady(fd, POLLIN, "accept4", options);
    // Ready means a connection is queued, so even a blocking listener won't wait here.
    const accepted = accept(fd, options);
    if (accepted !== null) return accepted;
  }
}

/**
 * Like {@linkcode read}, but waits for data without blocking the event loop:
 * resolves with bytes read, or 0 at EOF.
 *
 * @example
 * ```ts
 * import { close, readAsync, socketPair, write } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * const buffer = new Uint8Array(16);
 * const reading = readAsync(right, buffer, { timeoutMs: 1000 });
 * write(left, new Uint8Array([4, 2]));
 * console.log(await reading); // 2
 * close(left);
 * close(right);
 * ```
 */
export async function readAsync(
  fd: number,
  buffer: Uint8Array,
  options: WaitOptions = {},
): Promise<number> {
  for (;;) {
    await waitReady(fd, POLLIN, "read", options);
    // Readable (data, EOF or error pending): this read returns at once.
    const n = read(fd, buffer);
    if (n !== null) return n;
  }
}

/**
 * Like {@linkcode send}, but waits for room without blocking the event loop.
 * Sends once with `MSG_DONTWAIT`, so it never blocks even on a blocking fd,
 * and resolves with the bytes sent — possibly fewer than `buffer.byteLength`.
 *
 * @example
 * ```ts
 * import { close, sendAsync, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * console.log(await sendAsync(left, new Uint8Array(10), { timeoutMs: 1000 })); // 10
 * close(left);
 * close(right);
 * ```
 */
export async function sendAsync(
  fd: number,
  buffer: Uint8Array,
  options: WaitOptions = {},
): Promise<number> {
  for (;;) {
    await waitReady(fd, POLLOUT, "send", options);
    const n = send(fd, buffer, MSG_DONTWAIT);
    if (n !== null) return n;
  }
}

// ---------------------------------------------------------------------------
// select
// ---------------------------------------------------------------------------

function checkSelectable(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0 || fd >= FD_SETSIZE) {
    throw new RangeError(
      `select() cannot watch fd ${fd}: an fd_set is a fixed bitmap of FD_SETSIZE=${FD_SETSIZE} ` +
        `bits (fds 0..${FD_SETSIZE - 1}); FD_SET on a larger fd writes past it (undefined ` +
        `behaviour in glibc). Use poll() or epoll for descriptors >= ${FD_SETSIZE}.`,
    );
  }
}

/**
 * A `fd_set`: FD_SETSIZE (1024) bits stored as sixteen 64-bit `long` words;
 * fd `n` is bit `n % 64` of word `n / 64`. On little-endian CPUs that is also
 * bit `n % 8` of byte `n / 8`. Refuses fds outside 0..1023 with a RangeError.
 *
 * @example
 * ```ts
 * import { FdSet } from "./libc.ts";
 *
 * const set = new FdSet();
 * set.add(65); // word 1, bit 1
 * console.log(set.has(65), set.bytes[8]); // true 2
 * ```
 */
export class FdSet {
  /** The 128 bytes handed to `select`. */
  readonly bytes: Uint8Array = new Uint8Array(FD_SET_BYTES);
  // 64-bit words as pairs of 32-bit halves (little-endian: low half first),
  // to avoid BigInt arithmetic.
  readonly #halves = new Uint32Array(this.bytes.buffer);

  /** Sets the bit for `fd` (`FD_SET`). */
  add(fd: number): void {
    checkSelectable(fd);
    const word = fd >>> 6, bit = fd & 63;
    this.#halves[word * 2 + (bit >>> 5)] |= 1 << (bit & 31);
  }

  /** Whether the bit for `fd` is set (`FD_ISSET`). */
  has(fd: number): boolean {
    checkSelectable(fd);
    const word = fd >>> 6, bit = fd & 63;
    return (this.#halves[word * 2 + (bit >>> 5)] & (1 << (bit & 31))) !== 0;
  }

  /** Clears every bit (`FD_ZERO`). */
  clear(): void {
    this.#halves.fill(0);
  }
}

/** Which of the watched descriptors {@linkcode select} found ready. */
export interface SelectResult {
  /** Readable fds (data, EOF, or a pending connection). */
  readable: number[];
  /** Writable fds. */
  writable: number[];
}

const selectReadSet = new FdSet();
const selectWriteSet = new FdSet();

/**
 * `select` over read and write sets, waiting up to `timeoutMs` (negative =
 * forever), blocking the JS thread. Throws a RangeError naming FD_SETSIZE
 * for any fd outside 0..1023 — checked before any bit is set, because glibc's
 * FD_SET past the 1024-bit bitmap is a buffer overflow.
 *
 * @example
 * ```ts
 * import { close, select, socketPair } from "./libc.ts";
 *
 * const [left, right] = socketPair();
 * console.log(select([right], [left], 100)); // { readable: [], writable: [left] }
 * close(left);
 * close(right);
 * ```
 */
export function select(
  readFds: readonly number[],
  writeFds: readonly number[],
  timeoutMs: number,
): SelectResult {
  for (const fd of readFds) checkSelectable(fd);
  for (const fd of writeFds) checkSelectable(fd);
  const nfds = Math.max(-1, ...readFds, ...writeFds) + 1;
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    // Rebuilt on every try: select overwrites the sets and the timeval.
    selectReadSet.clear();
    selectWriteSet.clear();
    for (const fd of readFds) selectReadSet.add(fd);
    for (const fd of writeFds) selectWriteSet.add(fd);
    const remaining = remainingTimeout(deadline);
    let timeout: Uint8Array | null = null;
    if (remaining >= 0) {
      timevalScratch[0] = BigInt(Math.floor(remaining / 1000)); // tv_sec
      timevalScratch[1] = BigInt((remaining % 1000) * 1000); // tv_usec
      timeout = timevalBytes;
    }
    const r = sys.select(
      nfds,
      readFds.length > 0 ? selectReadSet.bytes : null,
      writeFds.length > 0 ? selectWriteSet.bytes : null,
      null,
      timeout,
    );
    if (r.value !== -1) {
      return {
        readable: readFds.filter((fd) => selectReadSet.has(fd)),
        writable: writeFds.filter((fd) => selectWriteSet.has(fd)),
      };
    }
    if (r.errno !== EINTR) throw new ErrnoError("select", r.errno);
  }
}

// ---------------------------------------------------------------------------
// epoll
// ---------------------------------------------------------------------------

/** One ready descriptor from {@linkcode epollWait}. */
export interface EpollReady {
  /** The `data` registered with {@linkcode epollCtl} — the fd unless you chose otherwise. */
  fd: number;
  /** What happened: {@linkcode EPOLLIN}, {@linkcode EPOLLOUT}, {@linkcode EPOLLHUP}, ... */
  events: number;
}

/**
 * `epoll_create1`: a new epoll instance (itself a descriptor; close it when done).
 *
 * @example
 * ```ts
 * import { close, epollCreate } from "./libc.ts";
 *
 * const epfd = epollCreate();
 * close(epfd);
 * ```
 */
export function epollCreate(flags = EPOLL_CLOEXEC): number {
  return check("epoll_create1", sys.epoll_create1(flags));
}

/**
 * `epoll_ctl`: add (`EPOLL_CTL_ADD`), change (`EPOLL_CTL_MOD`) or remove
 * (`EPOLL_CTL_DEL`) `fd` in the interest list. `data` (default: the fd, any
 * whole number up to 2^53) comes back as {@linkcode EpollReady.fd}.
 *
 * @example
 * ```ts
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, socketPair } from "./libc.ts";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export function epollCtl(epfd: number, op: number, fd: number, events = 0, data = fd): void {
  if (!Number.isSafeInteger(data) || data < 0) {
    throw new RangeError(`epoll data must be a whole number from 0 to 2^53-1, got ${data}`);
  }
  epollCtlView.setUint32(0, events >>> 0, true); // >>> 0: EPOLLET is bit 31
  epollCtlView.setUint32(EPOLL_DATA_OFFSET, data % 2 ** 32, true);
  epollCtlView.setUint32(EPOLL_DATA_OFFSET + 4, Math.floor(data / 2 ** 32), true);
  check("epoll_ctl", sys.epoll_ctl(epfd, op, fd, epollCtlScratch), `epfd ${epfd} fd ${fd}`);
}

let epollScratch = new Uint8Array(EPOLL_EVENT_SIZE * 64);
let epollScratchView = new DataView(epollScratch.buffer);
/** Buffers for threaded waits, reused; each is lent to one wait at a time. */
const idleAsyncEpollBuffers: Uint8Array[] = [];

function decodeEpollEvents(view: DataView, count: number): EpollReady[] {
  const ready = new Array<EpollReady>(count);
  for (let i = 0; i < count; i++) {
    const at = i * EPOLL_EVENT_SIZE;
    ready[i] = {
      fd: view.getUint32(at + EPOLL_DATA_OFFSET, true) +
        view.getUint32(at + EPOLL_DATA_OFFSET + 4, true) * 2 ** 32,
      events: view.getUint32(at, true),
    };
  }
  return ready;
}

function checkMaxEvents(maxEvents: number): void {
  if (!Number.isInteger(maxEvents) || maxEvents < 1) {
    throw new RangeError(`maxEvents must be a whole number >= 1, got ${maxEvents}`);
  }
}

/**
 * `epoll_wait`: up to `maxEvents` ready descriptors, waiting up to `timeoutMs`
 * (-1 = forever, 0 = just look), blocking the JS thread. The event buffer is
 * kept and reused between calls. Interrupted waits (EINTR) resume with the
 * remaining time.
 *
 * @example
 * ```ts
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, epollWait, socketPair, write } from "./libc.ts";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * write(left, new Uint8Array([1]));
 * console.log(epollWait(epfd, 16, 100)); // [{ fd: right, events: 1 }]
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export function epollWait(epfd: number, maxEvents = 64, timeoutMs = -1): EpollReady[] {
  checkMaxEvents(maxEvents);
  if (epollScratch.byteLength < maxEvents * EPOLL_EVENT_SIZE) {
    epollScratch = new Uint8Array(maxEvents * EPOLL_EVENT_SIZE);
    epollScratchView = new DataView(epollScratch.buffer);
  }
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    const r = sys.epoll_wait(epfd, epollScratch, maxEvents, remainingTimeout(deadline));
    if (r.value !== -1) return decodeEpollEvents(epollScratchView, r.value);
    if (r.errno !== EINTR) throw new ErrnoError("epoll_wait", r.errno, `epfd ${epfd}`);
  }
}

/**
 * {@linkcode epollWait} on an FFI worker thread, so the event loop keeps
 * running. Event buffers are pooled, so concurrent waits are safe. A -1 from
 * the thread is re-checked synchronously with timeout 0 to get a true errno
 * (EBADF, EINVAL, ...); if that succeeds, its events are returned instead.
 *
 * @example
 * ```ts
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, epollWaitAsync, socketPair, write } from "./libc.ts";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * const waiting = epollWaitAsync(epfd, 16, 1000);
 * write(left, new Uint8Array([1]));
 * console.log((await waiting).length); // 1
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export async function epollWaitAsync(
  epfd: number,
  maxEvents = 64,
  timeoutMs = -1,
): Promise<EpollReady[]> {
  checkMaxEvents(maxEvents);
  const size = maxEvents * EPOLL_EVENT_SIZE;
  const index = idleAsyncEpollBuffers.findIndex((candidate) => candidate.byteLength >= size);
  const buffer = index >= 0 ? idleAsyncEpollBuffers.splice(index, 1)[0] : new Uint8Array(size);
  try {
    const count = await sysAsync.epoll_wait(epfd, buffer, maxEvents, toTimeoutArgument(timeoutMs));
    if (count === -1) return epollWait(epfd, maxEvents, 0);
    return decodeEpollEvents(new DataView(buffer.buffer), count);
  } finally {
    idleAsyncEpollBuffers.push(buffer);
  }
}

// ---------------------------------------------------------------------------
// Resource limits and signals
// ---------------------------------------------------------------------------

/** A resource limit: the soft one applies, the hard one caps the soft one. */
export interface ResourceLimit {
  /** Current limit; Infinity for RLIM_INFINITY. */
  soft: number;
  /** Ceiling an unprivileged process may raise `soft` to; Infinity for RLIM_INFINITY. */
  hard: number;
}

function fromRlim(value: bigint): number {
  return value === RLIM_INFINITY ? Infinity : Number(value);
}

function toRlim(value: number): bigint {
  return value === Infinity ? RLIM_INFINITY : BigInt(value);
}

/**
 * `getrlimit`, by default for RLIMIT_NOFILE (how many descriptors this process
 * may have open).
 *
 * @example
 * ```ts
 * import { getrlimit } from "./libc.ts";
 *
 * const { soft, hard } = getrlimit();
 * console.log(`may open ${soft} descriptors (up to ${hard} if raised)`);
 * ```
 */
export function getrlimit(resource = RLIMIT_NOFILE): ResourceLimit {
  check("getrlimit", sys.getrlimit(resource, limitScratch));
  return { soft: fromRlim(limitScratch[0]), hard: fromRlim(limitScratch[1]) };
}

/**
 * `setrlimit`. Anyone may lower limits or raise `soft` up to `hard`; raising
 * `hard` needs privileges (EPERM).
 *
 * @example
 * ```ts
 * import { getrlimit, setrlimit } from "./libc.ts";
 *
 * setrlimit(getrlimit()); // no change
 * ```
 */
export function setrlimit(limit: ResourceLimit, resource = RLIMIT_NOFILE): void {
  limitScratch[0] = toRlim(limit.soft);
  limitScratch[1] = toRlim(limit.hard);
  check("setrlimit", sys.setrlimit(resource, limitScratch));
}

/**
 * Raises the soft RLIMIT_NOFILE to the hard limit — e.g. before a benchmark
 * that opens 10 000 connections — and returns the new limits.
 *
 * @example
 * ```ts
 * import { raiseFileLimit } from "./libc.ts";
 *
 * const { soft } = raiseFileLimit();
 * if (soft < 10_000) console.log(`only ${soft} descriptors allowed`);
 * ```
 */
export function raiseFileLimit(): ResourceLimit {
  const limit = getrlimit(RLIMIT_NOFILE);
  if (limit.soft < limit.hard) setrlimit({ soft: limit.hard, hard: limit.hard }, RLIMIT_NOFILE);
  return getrlimit(RLIMIT_NOFILE);
}

/**
 * What this process does on SIGPIPE: `"ignored"` in Deno (the Rust runtime
 * ignores it at start-up, so broken-pipe writes return EPIPE), `"default"`
 * (terminate) in most C programs, `"handled"` if someone installed a handler.
 *
 * @example
 * ```ts
 * import { sigpipeDisposition } from "./libc.ts";
 *
 * console.log(sigpipeDisposition()); // "ignored"
 * ```
 */
export function sigpipeDisposition(): "default" | "ignored" | "handled" {
  check("sigaction", sys.sigaction(SIGPIPE, null, sigactionScratch));
  // sa_handler is the first field: SIG_DFL = 0, SIG_IGN = 1, else a function.
  const handler = new DataView(sigactionScratch.buffer).getBigUint64(0, true);
  return handler === 0n ? "default" : handler === 1n ? "ignored" : "handled";
}
