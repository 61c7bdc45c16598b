/**
 * Lesson 10 — I/O models: blocking, non-blocking, synchronous, asynchronous.
 *
 * Part 1 talks to the kernel through libc (`"workbook/libc"`): a raw
 * listening socket made non-blocking with `fcntl`, `accept`/`read` calls that
 * answer EAGAIN instead of waiting, and an echo server that polls them.
 * Part 2 is the same kind of server written the blocking way. Part 3 serves
 * slow requests one after another, then all at once, with Deno's own sockets.
 * Read docs/10-io-models.md first; `deno task lesson 10` grades it.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import {
  bind,
  close,
  createTcpSocket,
  EAGAIN,
  ECONNABORTED,
  EINTR,
  EMFILE,
  ENFILE,
  ErrnoError,
  EWOULDBLOCK,
  F_GETFL,
  F_SETFL,
  getsockname,
  listen,
  O_NONBLOCK,
  send,
  setReuseAddress,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  sys,
} from "workbook/libc";

const log = programLogger("io-models");

// ---------------------------------------------------------------------------
// Part 1: non-blocking sockets through libc, and a polling loop
// ---------------------------------------------------------------------------

/** A listening socket made through libc: its descriptor and the port the kernel gave it. */
export interface RawListener {
  /** The listening descriptor. Whoever made the listener closes it. */
  fd: number;
  /** The port it listens on (on 127.0.0.1). */
  port: number;
}

/**
 * Turns on O_NONBLOCK for `fd` with `fcntl`: read the status flags
 * (`F_GETFL`), add `O_NONBLOCK`, write them back (`F_SETFL`). Keep every flag
 * that was already set (e.g. `O_APPEND`): `F_SETFL` replaces the whole set.
 * A failing call throws `new ErrnoError("fcntl", errno)`.
 */
export function makeNonBlocking(fd: number): void {
  // #region solution makeNonBlocking
  const flags = sys.fcntl(fd, F_GETFL);
  if (flags.value === -1) throw new ErrnoError("fcntl", flags.errno, `F_GETFL fd ${fd}`);
  const set = sys.fcntl(fd, F_SETFL, flags.value | O_NONBLOCK);
  if (set.value === -1) throw new ErrnoError("fcntl", set.errno, `F_SETFL fd ${fd}`);
  // #endregion solution
}

/**
 * Opens a TCP listening socket on 127.0.0.1:`port` (0: the kernel picks a
 * free port) through libc — socket, SO_REUSEADDR, bind, listen — then makes
 * it non-blocking with your {@linkcode makeNonBlocking}. Returns its fd and
 * real port (ask `getsockname`). If a step fails, close the fd before throwing.
 */
export function listenNonBlocking(port = 0): RawListener {
  // #region solution listenNonBlocking
  const fd = createTcpSocket();
  try {
    setReuseAddress(fd);
    bind(fd, "127.0.0.1", port);
    listen(fd, 128);
    makeNonBlocking(fd);
    return { fd, port: getsockname(fd).port };
  } catch (error) {
    close(fd);
    throw error;
  }
  // #endregion solution
}

/**
 * One `accept4` on a non-blocking listener. Returns the new connection's fd,
 * or `null` when nobody is waiting (errno EAGAIN/EWOULDBLOCK: "nothing yet",
 * not a failure). On Linux the new socket does NOT inherit O_NONBLOCK from the
 * listener: ask for it with the `SOCK_NONBLOCK` flag (add `SOCK_CLOEXEC` too).
 * EINTR or ECONNABORTED (a client that gave up while queued): try again.
 * Any other errno: throw `new ErrnoError("accept4", errno)`.
 */
export function tryAccept(listenFd: number): number | null {
  // #region solution tryAccept
  for (;;) {
    const r = sys.accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (r.value !== -1) return r.value;
    if (r.errno === EAGAIN || r.errno === EWOULDBLOCK) return null;
    if (r.errno === EINTR || r.errno === ECONNABORTED) continue;
    throw new ErrnoError("accept4", r.errno, `fd ${listenFd}`);
  }
  // #endregion solution
}

/**
 * One `read` on a non-blocking connection into `buffer`. Returns the number
 * of bytes read; `0` means end of stream (the peer closed); `null` means no
 * data yet (EAGAIN/EWOULDBLOCK). EINTR: try again. Any other errno (e.g.
 * ECONNRESET): throw `new ErrnoError("read", errno)`.
 */
export function tryRead(fd: number, buffer: Uint8Array): number | null {
  // #region solution tryRead
  for (;;) {
    const r = sys.read(fd, buffer);
    if (r.value !== -1) return r.value;
    if (r.errno === EAGAIN || r.errno === EWOULDBLOCK) return null;
    if (r.errno === EINTR) continue;
    throw new ErrnoError("read", r.errno, `fd ${fd}`);
  }
  // #endregion solution
}

/** What a polling loop spent its calls on. */
export interface PollingStats {
  /** Passes of the loop (each: maybe one accept, one read per open connection, then yield). */
  rounds: number;
  /** Every `accept4` call made. */
  acceptCalls: number;
  /** The accept calls that found nobody (EAGAIN). */
  wastedAccepts: number;
  /** Every `read` call made. */
  readCalls: number;
  /** The read calls that found no data (EAGAIN). A read that returns 0 (EOF) is not wasted. */
  wastedReads: number;
}

/** Fresh, all-zero stats. */
export function newPollingStats(): PollingStats {
  return { rounds: 0, acceptCalls: 0, wastedAccepts: 0, readCalls: 0, wastedReads: 0 };
}

/** Options of {@linkcode pollingEchoServer}. */
export interface PollingOptions {
  /** A non-blocking listener (from {@linkcode listenNonBlocking}); the caller closes it. */
  listener: RawListener;
  /** Accept this many clients (Infinity: keep accepting), echo each until it closes, then return. */
  clients: number;
  /** Count into this object, updating it as you go (the grader watches it while you run). */
  stats?: PollingStats;
  /** When aborted: close the open connections and return the stats so far. */
  signal?: AbortSignal;
}

/**
 * Writes all of `bytes` to a non-blocking socket (given: writing is not this
 * lesson's point). A full send buffer answers EAGAIN too; then it yields and
 * tries again, for up to 2 s.
 */
export async function sendAllNonBlocking(fd: number, bytes: Uint8Array): Promise<void> {
  const deadline = performance.now() + 2000;
  for (let offset = 0; offset < bytes.length;) {
    const n = send(fd, bytes.subarray(offset));
    if (n !== null) offset += n;
    else if (performance.now() > deadline) throw new ErrnoError("send", EAGAIN, `fd ${fd}`);
    else await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * An echo server that never waits inside a call: it polls. Each round:
 * - while fewer than `clients` have been accepted, one {@linkcode tryAccept};
 * - one {@linkcode tryRead} on every open connection: data goes straight back
 *   ({@linkcode sendAllNonBlocking}); 0 (end of stream), a read error, or a
 *   send that throws (the client reset, or never reads): close THAT
 *   connection and keep serving the others;
 * - out of descriptors (tryAccept throws an ErrnoError with EMFILE or
 *   ENFILE): the client stays queued; skip accepting for a pause of 10 ms,
 *   doubling (up to 1 s) while it keeps failing, log ONE warning per episode,
 *   and accept as usual again once an accept4 call does not fail;
 * - then yield to the event loop with a macrotask:
 *   `await new Promise((r) => setTimeout(r, 0))`. A loop that never yields (or
 *   only awaits an already-resolved promise) freezes every timer and
 *   connection of the program, the clients' too.
 *
 * Count every call in `stats` (updated in place, as you go). Returns the
 * stats once `clients` clients have been accepted and have all closed, or
 * when `signal` is aborted; close every connection you opened either way.
 */
export async function pollingEchoServer(options: PollingOptions): Promise<PollingStats> {
  // #region solution pollingEchoServer
  const stats = options.stats ?? newPollingStats();
  const open = new Set<number>();
  const buffer = new Uint8Array(16 * 1024);
  let accepted = 0;
  let pauseMs = 0; // out of descriptors: the current pause between accept calls
  let resumeAt = 0;
  try {
    while ((accepted < options.clients || open.size > 0) && !options.signal?.aborted) {
      stats.rounds++;
      if (accepted < options.clients && performance.now() >= resumeAt) {
        stats.acceptCalls++;
        let fd: number | null;
        try {
          fd = tryAccept(options.listener.fd);
          pauseMs = 0; // accept4 did not fail: the episode (if any) is over
        } catch (error) {
          const errno = error instanceof ErrnoError ? error.errno : undefined;
          if (errno !== EMFILE && errno !== ENFILE) throw error;
          if (pauseMs === 0) log.warn("out of descriptors, accepting paused: {error}", { error });
          pauseMs = Math.min(pauseMs === 0 ? 10 : pauseMs * 2, 1000);
          resumeAt = performance.now() + pauseMs;
          fd = null;
        }
        if (fd === null) stats.wastedAccepts++;
        else {
          accepted++;
          open.add(fd);
          log.info("accepted a client on fd {fd}", { fd });
        }
      }
      for (const fd of [...open]) {
        stats.readCalls++;
        let n: number | null;
        try {
          n = tryRead(fd, buffer);
        } catch (error) {
          log.debug("read on fd {fd} failed: {error}", { fd, error });
          n = 0; // a reset connection is over, like one that closed
        }
        if (n === null) {
          stats.wastedReads++;
        } else if (n === 0) {
          open.delete(fd);
          close(fd);
          log.info("fd {fd} closed", { fd });
        } else {
          try {
            await sendAllNonBlocking(fd, buffer.subarray(0, n));
          } catch (error) {
            log.info("echo to fd {fd} failed, dropping it: {error}", { fd, error });
            open.delete(fd);
            close(fd);
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } finally {
    for (const fd of open) close(fd);
  }
  return stats;
  // #endregion solution
}

// ---------------------------------------------------------------------------
// Part 2: the blocking way
// ---------------------------------------------------------------------------

/**
 * Serves ONE client the blocking way, synchronously: accept on the BLOCKING
 * listener `listenFd` (the call waits until a client is there), read what it
 * sends until end of stream (each read waits for data), send it all back,
 * close the connection, return how many bytes were echoed. While this runs,
 * nothing else in the program does: no timer, no promise, no other socket.
 * A failing call (other than EINTR, or ECONNABORTED from accept4) throws
 * `new ErrnoError(call, errno)`; the accepted connection is closed either way.
 */
export function blockingEchoOnce(listenFd: number): number {
  // #region solution blockingEchoOnce
  let fd: number;
  for (;;) {
    const r = sys.accept4(listenFd, null, null, SOCK_CLOEXEC);
    if (r.value !== -1) {
      fd = r.value;
      break;
    }
    if (r.errno !== EINTR && r.errno !== ECONNABORTED) {
      throw new ErrnoError("accept4", r.errno, `fd ${listenFd}`);
    }
  }
  try {
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    let total = 0;
    for (;;) {
      const r = sys.read(fd, buffer);
      if (r.value === -1 && r.errno === EINTR) continue;
      if (r.value === -1) throw new ErrnoError("read", r.errno, `fd ${fd}`);
      if (r.value === 0) break;
      chunks.push(buffer.slice(0, r.value));
      total += r.value;
    }
    for (const chunk of chunks) {
      for (let offset = 0; offset < chunk.length;) offset += send(fd, chunk.subarray(offset)) ?? 0;
    }
    return total;
  } finally {
    close(fd);
  }
  // #endregion solution
}

// ---------------------------------------------------------------------------
// Part 3: slow requests, served one by one or all at once
// ---------------------------------------------------------------------------

/** Serves one connection; the server closes the connection after it settles. */
export type Handler = (conn: Deno.Conn) => Promise<void>;

/** True for the errors `accept()` throws once its listener has been closed. */
export function isListenerClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** Closes a connection unless it is closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // The handler closed it already.
  }
}

/**
 * The serial server: accept one connection, `await handler(conn)`, close the
 * connection, and only then accept the next. A handler that throws is logged
 * and the loop goes on. Returns when `listener` is closed (`accept()` then
 * throws; see {@linkcode isListenerClosed}); any other accept() error (EMFILE:
 * out of descriptors, for a moment) is logged and the loop accepts again.
 */
export async function serveSerial(listener: Deno.Listener, handler: Handler): Promise<void> {
  // #region solution serveSerial
  for (;;) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isListenerClosed(error)) return;
      log.warn("accept failed: {error}", { error });
      continue;
    }
    try {
      await handler(conn);
    } catch (error) {
      log.warn("handler failed: {error}", { error });
    } finally {
      closeQuietly(conn);
    }
  }
  // #endregion solution
}

/**
 * The concurrent server: accept a connection, START `handler(conn)` without
 * waiting for it, and go straight back to accepting. Each handler gets its
 * own catch (log the error: nobody else awaits it) and closes its connection
 * when done. Keep the running handlers' promises: when `listener` is closed,
 * wait for all of them to settle before returning. Other accept() errors:
 * log them and accept again, as in {@linkcode serveSerial}.
 */
export async function serveConcurrent(listener: Deno.Listener, handler: Handler): Promise<void> {
  // #region solution serveConcurrent
  const running = new Set<Promise<void>>();
  for (;;) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isListenerClosed(error)) break;
      log.warn("accept failed: {error}", { error });
      continue;
    }
    const task = (async () => {
      try {
        await handler(conn);
      } catch (error) {
        log.warn("handler failed: {error}", { error });
      } finally {
        closeQuietly(conn);
      }
    })();
    running.add(task);
    task.finally(() => running.delete(task));
  }
  await Promise.all(running);
  // #endregion solution
}

// ---------------------------------------------------------------------------
// The program: `deno task run 10 polling --port 9000`
// ---------------------------------------------------------------------------

/** Runs your polling echo server until Ctrl-C, logging its wasted calls every 2 s. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  if (args.host !== "127.0.0.1") log.warn("the raw listener binds 127.0.0.1 only");
  const listener = listenNonBlocking(args.port);
  log.info("polling echo server on 127.0.0.1:{port} (fd {fd})", { ...listener });
  const stats = newPollingStats();
  const stop = new AbortController();
  untilInterrupted().then(() => stop.abort());
  const line = "{rounds} rounds: {acceptCalls} accept calls ({wastedAccepts} wasted), " +
    "{readCalls} read calls ({wastedReads} wasted)";
  const report = setInterval(() => log.info(`so far ${line}`, { ...stats }), 2000);
  try {
    await pollingEchoServer({ listener, clients: Infinity, stats, signal: stop.signal });
  } finally {
    clearInterval(report);
    close(listener.fd);
  }
  log.info(`stopped after ${line}`, { ...stats });
}

if (import.meta.main) await main();
