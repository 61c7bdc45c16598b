/**
 * Lesson 03 — a TCP server: serial, then a task per connection.
 *
 * The protocol (the "ack" server): the client sends lines ending in `\n`; the
 * server answers each line with `ack-` and the line with its ASCII letters
 * upper-cased: `hello\n` → `ack-HELLO\n`. Read docs/03-tcp-server.md first;
 * `deno task lesson 3` grades this file over real sockets.
 *
 * @module
 */
import {
  ACCEPT_PAUSE_MS,
  isOutOfDescriptors,
  MAX_ACCEPT_PAUSE_MS,
  programLogger,
  sleep,
} from "workbook";

const serialLog = programLogger("serial");
const concurrentLog = programLogger("concurrent");

/** Every reply starts with these bytes, then the line in upper case. */
export const ACK = "ack-";

/**
 * The longest line the server accepts, in bytes, not counting its `\n`.
 * A line of exactly `MAX_LINE` bytes is fine; one byte more is refused.
 */
export const MAX_LINE = 1024;

/**
 * Sent instead of a reply when a line is longer than {@linkcode MAX_LINE};
 * then the server closes the connection.
 */
export const LINE_TOO_LONG = `error: line longer than ${MAX_LINE} bytes\n`;

/**
 * How one connection ended, as {@linkcode handleConnection} reports it:
 * - `"eof"`: the client finished sending (read returned `null`); every line,
 *   even a last one without `\n`, was answered, then the server closed its side;
 * - `"reset"`: the client vanished: the connection was reset (RST) or the
 *   pipe broke while the server wrote;
 * - `"too-long"`: a line passed {@linkcode MAX_LINE}; the server sent
 *   {@linkcode LINE_TOO_LONG} and closed;
 * - `"closed"`: the server closed the connection itself (`server.close()`),
 *   which cancels a pending read.
 */
export type Ending = "eof" | "reset" | "too-long" | "closed";

/** A running server. */
export interface LineServer {
  /** Where the server listens (port 0 in the options means the kernel picked this port). */
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes every live connection, and resolves once every
   * connection handler has finished. Calling it twice is harmless.
   */
  close(): Promise<void>;
}

/** Where a server listens, and how it waits. */
export interface ServerOptions {
  /** Default `"127.0.0.1"`: a lesson server is not for the network. */
  hostname?: string;
  /** Default 0: the kernel picks a free port; read it from `server.addr.port`. */
  port?: number;
  /**
   * How the server waits `ms` milliseconds before it calls `accept()` again
   * after running out of descriptors. Default {@linkcode sleep} (a timer). The
   * grader passes its own, to see every pause without waiting it out.
   */
  pause?: (ms: number) => Promise<void>;
}

// Helpers you may use (they are not part of the task).

/** The bytes of `a` followed by those of `b`, in a new array. */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Closes `conn` if it is still open. A connection may be closed from two
 * places — its handler, and `server.close()` — and closing one twice throws
 * `BadResource`; that one error means "already closed" and is fine.
 */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** The client's address as `127.0.0.1:50412`, for log lines. */
function peerOf(conn: Deno.Conn): string {
  const addr = conn.remoteAddr as Deno.NetAddr;
  return `${addr.hostname}:${addr.port}`;
}

/**
 * Returns a copy of `bytes` with the ASCII letters `a`–`z` (0x61–0x7a) turned
 * into `A`–`Z` (0x41–0x5a). Every other byte — digits, punctuation, the
 * bytes of `é` or `世`, even bytes that are not valid UTF-8 — is copied
 * unchanged, so the reply has exactly as many bytes as the line.
 *
 * Work on bytes, not text: decoding first turns invalid bytes into `�`, and
 * `"ß".toUpperCase()` is `"SS"`, which changes the length.
 */
export function upperAscii(bytes: Uint8Array): Uint8Array {
  // #region solution upperAscii
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    out[i] = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
  }
  return out;
  // #endregion solution
}

/**
 * Serves one client until the connection ends, then closes `conn` (always,
 * exactly once) and says how it ended.
 *
 * - Collect bytes until a `\n`; answer each complete line with `ack-` + the
 *   line upper-cased ({@linkcode upperAscii}), its `\n` included:
 *   `hi\n` → `ack-HI\n`, `hi\r\n` → `ack-HI\r\n`, `\n` → `ack-\n`.
 *   One reply per line, however the bytes arrive: one byte per read, or
 *   several lines in one read.
 * - At end of stream (read returns `null`), answer a last line that has no
 *   `\n` as if it had one (`bye` → `ack-BYE\n`), close, return `"eof"`.
 * - A line longer than {@linkcode MAX_LINE} bytes (complete or still without
 *   its `\n`): write {@linkcode LINE_TOO_LONG} instead, close, return
 *   `"too-long"`.
 * - A client that vanishes is routine, not a crash: `ConnectionReset`,
 *   `BrokenPipe` or `ConnectionAborted` from read or write → close, return
 *   `"reset"`. `Interrupted` or `BadResource` means your server closed the
 *   connection itself (a pending read was cancelled) → return `"closed"`.
 *   Anything else: close and let it propagate.
 *
 * `write()` may write fewer bytes than you give it: loop until all are written.
 * The helpers `concat` and `closeQuietly` above are yours to use.
 */
export async function handleConnection(conn: Deno.Conn): Promise<Ending> {
  // #region solution handleConnection
  const writeAll = async (bytes: Uint8Array) => {
    for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
  };
  const reply = (line: Uint8Array) => {
    const out = new Uint8Array(ACK.length + line.length);
    out.set(new TextEncoder().encode(ACK));
    out.set(upperAscii(line), ACK.length);
    return writeAll(out);
  };
  const buffer = new Uint8Array(4096);
  let pending: Uint8Array = new Uint8Array(0); // a line whose \n has not arrived yet
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) {
        if (pending.length > 0) await reply(concat(pending, new Uint8Array([0x0a])));
        return "eof";
      }
      pending = concat(pending, buffer.subarray(0, n));
      let newline: number;
      while ((newline = pending.indexOf(0x0a)) >= 0) {
        if (newline > MAX_LINE) break;
        await reply(pending.subarray(0, newline + 1));
        pending = pending.subarray(newline + 1);
      }
      // A line's \n must come within MAX_LINE bytes; past that, refuse it.
      const lineLength = newline >= 0 ? newline : pending.length;
      if (lineLength > MAX_LINE) {
        await writeAll(new TextEncoder().encode(LINE_TOO_LONG));
        return "too-long";
      }
    }
  } catch (error) {
    if (
      error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.ConnectionAborted
    ) return "reset";
    if (error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BadResource) {
      return "closed";
    }
    throw error;
  } finally {
    closeQuietly(conn);
  }
  // #endregion solution
}

/**
 * Starts the serial server: one accept loop that serves each client to the
 * end (`await handleConnection(conn)`) before it accepts the next one. A
 * second client can connect — the kernel queues it — but gets no reply until
 * the first one leaves.
 *
 * - Listen on `options.hostname` (default `"127.0.0.1"`), `options.port` (default 0).
 * - One client must never stop the server: an error from `accept()` (a
 *   client that reset while it waited in the queue makes `accept()` throw
 *   `NotConnected`) or from `handleConnection` is logged, and the loop goes on.
 * - Out of descriptors (`isOutOfDescriptors(error)`, from `"workbook"`), the
 *   loop pauses before it accepts again: `options.pause(ms)` (default
 *   {@linkcode sleep}), {@linkcode ACCEPT_PAUSE_MS} first, doubling up to
 *   {@linkcode MAX_ACCEPT_PAUSE_MS}. It logs one warning when the trouble
 *   starts — not one per failed attempt — and once `accept()` works again the
 *   next trouble starts over: a new warning, a pause of ACCEPT_PAUSE_MS.
 * - Log each connect and disconnect (`serialLog.info(...)`), e.g.
 *   `client 127.0.0.1:50412 connected`, `client 127.0.0.1:50412 left (eof)`.
 * - `close()` stops accepting, closes the live connection, and resolves
 *   when the loop has ended.
 */
export function startSerialServer(options: ServerOptions = {}): LineServer {
  // #region solution startSerialServer
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    transport: "tcp",
  });
  const pause = options.pause ?? sleep;
  let closing = false;
  let current: Deno.Conn | undefined;
  let pauseMs = 0; // the last pause while out of descriptors; 0 when accept() works
  const loop = (async () => {
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing) break; // close() closed the listener: a pending accept fails
        if (isOutOfDescriptors(error)) {
          // The client stays queued in the kernel: retrying at once would spin. Back off,
          // and say so once, at the first failure of the episode (no pause yet).
          if (pauseMs === 0) {
            serialLog.warn("out of file descriptors: pausing accept ({error})", {
              error: String(error),
            });
          }
          pauseMs = pauseMs === 0 ? ACCEPT_PAUSE_MS : Math.min(pauseMs * 2, MAX_ACCEPT_PAUSE_MS);
          await pause(pauseMs);
          continue;
        }
        serialLog.warn("accept failed, going on: {error}", { error: String(error) });
        continue;
      }
      pauseMs = 0; // accept() works again: the next shortage starts afresh
      if (closing) {
        closeQuietly(conn);
        break;
      }
      const peer = peerOf(conn);
      serialLog.info("client {peer} connected", { peer });
      current = conn;
      try {
        const ending = await handleConnection(conn);
        serialLog.info("client {peer} left ({ending})", { peer, ending });
      } catch (error) {
        serialLog.error("client {peer}: {error}", { peer, error: String(error) });
      } finally {
        current = undefined;
      }
    }
  })();
  return {
    addr: listener.addr,
    async close() {
      if (!closing) {
        closing = true;
        listener.close();
        if (current) closeQuietly(current);
      }
      await loop;
    },
  };
  // #endregion solution
}

/**
 * Starts the task-per-connection server (the Deno way to write Python's
 * thread-per-connection server): the accept loop starts
 * `handleConnection(conn)` *without* awaiting it, so it is back in
 * `accept()` at once and any number of clients are served at the same time.
 *
 * - Listen as {@linkcode startSerialServer} does.
 * - A handler runs on its own, so it needs its own error handling: attach a
 *   `.catch` (or wrap it in an async function with try/catch) — a rejection
 *   nobody handles crashes the whole program. Errors from `accept()` are
 *   logged and the loop goes on; out of descriptors, it pauses and backs off
 *   exactly as {@linkcode startSerialServer} does.
 * - Keep every live connection with its handler's promise (a `Map`), so
 *   `close()` can close them all and wait for the handlers.
 * - Log each connect and disconnect (`concurrentLog.info(...)`).
 * - `close()` stops accepting, closes every live connection, and resolves
 *   when every handler has finished.
 */
export function startConcurrentServer(options: ServerOptions = {}): LineServer {
  // #region solution startConcurrentServer
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    transport: "tcp",
  });
  const pause = options.pause ?? sleep;
  let closing = false;
  let pauseMs = 0; // the last pause while out of descriptors; 0 when accept() works
  // Every live connection and the promise of its handler.
  const handlers = new Map<Deno.Conn, Promise<void>>();

  const serve = async (conn: Deno.Conn) => {
    const peer = peerOf(conn);
    try {
      const ending = await handleConnection(conn);
      concurrentLog.info("client {peer} left ({ending})", { peer, ending });
    } catch (error) {
      concurrentLog.error("client {peer}: {error}", { peer, error: String(error) });
    } finally {
      handlers.delete(conn);
    }
  };

  const loop = (async () => {
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing) break;
        if (isOutOfDescriptors(error)) {
          // The client stays queued in the kernel: retrying at once would spin. Back off,
          // and say so once, at the first failure of the episode (no pause yet).
          if (pauseMs === 0) {
            concurrentLog.warn("out of file descriptors: pausing accept ({error})", {
              error: String(error),
            });
          }
          pauseMs = pauseMs === 0 ? ACCEPT_PAUSE_MS : Math.min(pauseMs * 2, MAX_ACCEPT_PAUSE_MS);
          await pause(pauseMs);
          continue;
        }
        concurrentLog.warn("accept failed, going on: {error}", { error: String(error) });
        continue;
      }
      pauseMs = 0; // accept() works again: the next shortage starts afresh
      if (closing) {
        closeQuietly(conn);
        break;
      }
      handlers.set(conn, serve(conn)); // not awaited: back to accept() at once
      concurrentLog.info("client {peer} connected ({count} live)", {
        peer: peerOf(conn),
        count: handlers.size,
      });
    }
  })();

  return {
    addr: listener.addr,
    async close() {
      if (!closing) {
        closing = true;
        listener.close();
        for (const conn of handlers.keys()) closeQuietly(conn);
      }
      await loop;
      await Promise.all(handlers.values());
    },
  };
  // #endregion solution
}
