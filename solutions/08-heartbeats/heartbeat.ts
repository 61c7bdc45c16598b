/**
 * Lesson 08 — heartbeats and expiry.
 *
 * Two ways to notice that a peer has gone:
 * - a UDP chat, where "connected" means nothing: a client is live while it keeps
 *   talking, and heartbeats (`hb`) keep a quiet client live; the server forgets
 *   a client that falls silent;
 * - a TCP echo server with an application-level PING/PONG and an idle deadline,
 *   which closes a peer that stops answering.
 *
 * Everything that depends on time takes a {@linkcode Clock}, so the grader can
 * move time by hand. `deno task lesson 8` grades this file; read
 * docs/08-heartbeats.md first. Run the chat server with
 * `deno task run 8 server --port 9000`.
 *
 * @module
 */
import {
  ACCEPT_PAUSE_MS,
  isGoneBeforeAccept,
  isListenerClosed,
  MAX_ACCEPT_PAUSE_MS,
  parseProgramArgs,
  programLogger,
  setupLogging,
  untilInterrupted,
} from "workbook";

const chatLog = programLogger("udp-chat");
const pingLog = programLogger("ping-server");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ─── Time ───────────────────────────────────────────────────────────────────

/**
 * What a clock's `setTimeout`/`setInterval` return: hand it back to
 * `clearTimeout`/`clearInterval` and do nothing else with it (Deno's own
 * timers return an object, the grader's fake clock a number).
 */
export type TimerId = unknown;

/**
 * Time and timers, injected. Take every reading of the time and every timer
 * from the clock you were given, never from `Date.now()` or the global
 * `setTimeout`/`setInterval`: the grader passes a clock that only moves when
 * it says so, and checks minutes of heartbeats in milliseconds.
 */
export interface Clock {
  /** Milliseconds on a clock that never jumps backwards. */
  now(): number;
  /** Runs `fn` once, `ms` from now; returns an id for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timeout (an unknown or undefined id is ignored). */
  clearTimeout(id: TimerId | undefined): void;
  /** Runs `fn` every `ms`; returns an id for `clearInterval`. */
  setInterval(fn: () => void, ms: number): TimerId;
  /** Cancels an interval (an unknown or undefined id is ignored). */
  clearInterval(id: TimerId | undefined): void;
}

/**
 * The real clock. `performance.now()` is monotonic: unlike `Date.now()` it
 * does not jump when the system clock is corrected, which would expire every
 * client at once (or none for an hour).
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (id) => clearInterval(id as ReturnType<typeof setInterval> | undefined),
};

// ─── Part 1: the UDP chat ───────────────────────────────────────────────────
//
// Datagrams are UTF-8 text. One trailing "\n" is ignored, so `nc -u` works.
//   "hb"    a heartbeat, and the only way in: registers the sender or
//           refreshes it; never forwarded
//   "quit"  the sender leaves at once; never forwarded
//   other   a chat message from a member: refreshes it, then goes to every
//           other member as "<host>:<port>: <text>\n"
// A chat message from an address that is not a member (a stranger, or a
// client that expired) is dropped: it reaches nobody and gets no answer.

/**
 * The most bytes one UDP datagram can carry over IPv4: 65,535 (the IP packet
 * limit) − 20 (IP header) − 8 (UDP header). `send` of more fails with
 * "Message too long".
 */
export const MAX_UDP_PAYLOAD = 65_507;

/**
 * What the sender of a chat message gets instead of a forward, when the
 * forwarded datagram `"<host>:<port>: <text>\n"` would be longer than
 * {@linkcode MAX_UDP_PAYLOAD}: nobody else gets anything.
 */
export const TOO_LONG_NOTICE = "server: message too long, not forwarded\n";

/** A client address as text and as registry key: `127.0.0.1:50412`. */
export function addressKey(addr: { hostname: string; port: number }): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** A datagram's text: UTF-8, with one trailing `\n` (or `\r\n`) removed. */
export function datagramText(bytes: Uint8Array): string {
  return decoder.decode(bytes).replace(/\r?\n$/, "");
}

/** One registered chat client. */
export interface ClientEntry {
  /** {@linkcode addressKey} of its address. */
  key: string;
  /** Where to send its datagrams. */
  addr: Deno.NetAddr;
  /** Clock reading when the server last heard from it. */
  lastSeen: number;
}

/**
 * Who is in the chat. Knows nothing of sockets or clocks: every method that
 * needs the time is told `now`, so it can be checked with plain numbers.
 * Clients are kept in an array, in the order they joined.
 */
export class ClientRegistry {
  /** A client silent for longer than this (ms) expires. */
  readonly timeoutMs: number;
  #clients: ClientEntry[] = [];

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  /** A copy of the registered clients, in join order (for logs and tests). */
  list(): ClientEntry[] {
    return this.#clients.map((client) => ({ ...client, addr: { ...client.addr } }));
  }

  /**
   * `addr` sent a heartbeat at `now`. A new client is added at the end
   * (return `true`); a known one gets `lastSeen = now` (return `false`).
   */
  seen(addr: Deno.NetAddr, now: number): boolean {
    // #region solution seen
    const key = addressKey(addr);
    const known = this.#clients.find((client) => client.key === key);
    if (known) {
      known.lastSeen = now;
      return false;
    }
    this.#clients.push({ key, addr: { ...addr }, lastSeen: now });
    return true;
    // #endregion solution
  }

  /**
   * `addr` sent a chat message at `now`. A registered client gets
   * `lastSeen = now` (return `true`); for any other address nothing changes
   * (return `false`): only a heartbeat registers.
   */
  refresh(addr: Deno.NetAddr, now: number): boolean {
    // #region solution refresh
    const key = addressKey(addr);
    const known = this.#clients.find((client) => client.key === key);
    if (!known) return false;
    known.lastSeen = now;
    return true;
    // #endregion solution
  }

  /** `addr` said `quit`: remove it now. Returns whether it was registered. */
  remove(addr: Deno.NetAddr): boolean {
    // #region solution remove
    const key = addressKey(addr);
    const index = this.#clients.findIndex((client) => client.key === key);
    if (index < 0) return false;
    this.#clients.splice(index, 1);
    return true;
    // #endregion solution
  }

  /**
   * The sweep: removes every client silent for *longer* than `timeoutMs`
   * (`now - lastSeen > timeoutMs`) and returns the removed ones, in join order.
   * Several clients can expire in the same sweep — side by side, too. Do not
   * remove entries from the array while you are walking over it.
   */
  expire(now: number): ClientEntry[] {
    // #region solution expire
    // Decide first, remove after: the walk never sees the array change under it.
    const expired = this.#clients.filter((client) => now - client.lastSeen > this.timeoutMs);
    if (expired.length > 0) this.#clients = this.#clients.filter((c) => !expired.includes(c));
    return expired;
    // #endregion solution
  }

  /** Who gets a message from `sender`: every registered client but the sender, in join order. */
  recipients(sender: Deno.NetAddr): ClientEntry[] {
    // #region solution recipients
    const key = addressKey(sender);
    return this.#clients.filter((client) => client.key !== key);
    // #endregion solution
  }
}

/**
 * Handles one datagram that arrived at the chat server from `from` at `now`:
 * `quit` removes the sender; `hb` registers or refreshes it; any other text is
 * a chat message: from an address that is not registered it is dropped (no
 * reply, no forward); from a member it refreshes the member and is sent to
 * every recipient as `"<addressKey(from)>: <text>\n"`, one datagram each,
 * awaiting each send — unless that datagram would be longer than
 * {@linkcode MAX_UDP_PAYLOAD} bytes: then only the sender gets
 * {@linkcode TOO_LONG_NOTICE}.
 */
export async function handleDatagram(
  socket: Deno.DatagramConn,
  registry: ClientRegistry,
  bytes: Uint8Array,
  from: Deno.NetAddr,
  now: number,
): Promise<void> {
  // #region solution handleDatagram
  const text = datagramText(bytes);
  const who = addressKey(from);
  if (text === "quit") {
    if (registry.remove(from)) chatLog.info("{client} left", { client: who });
    return;
  }
  if (text === "hb") {
    if (registry.seen(from, now)) chatLog.info("{client} joined", { client: who });
    return;
  }
  // A stranger's message reaches nobody: forwarding it would make the server an amplifier.
  if (!registry.refresh(from, now)) return;
  const line = encoder.encode(`${who}: ${text}\n`);
  if (line.length > MAX_UDP_PAYLOAD) {
    chatLog.info("{client} sent {bytes} bytes: too long to forward", {
      client: who,
      bytes: bytes.length,
    });
    await socket.send(encoder.encode(TOO_LONG_NOTICE), from);
    return;
  }
  for (const client of registry.recipients(from)) {
    await socket.send(line, client.addr);
  }
  chatLog.debug("{client} said {text}", { client: who, text });
  // #endregion solution
}

/** Settings of {@linkcode startChatServer}. */
export interface ChatServerOptions {
  /** Address to bind (default `127.0.0.1`). */
  hostname?: string;
  /** Port (default 0: the kernel picks). */
  port?: number;
  /** A client silent for longer than this (ms) expires. */
  timeoutMs: number;
  /** How often the sweep runs (default `timeoutMs / 4`). */
  sweepMs?: number;
  /** Where time comes from (default {@linkcode systemClock}). */
  clock?: Clock;
}

/** A running chat server. */
export interface ChatServer {
  /** The UDP address it receives on. */
  readonly addr: Deno.NetAddr;
  /** The registered clients, in join order. */
  clients(): ClientEntry[];
  /** Stops the sweep timer, closes the socket and waits for the receive loop to end. */
  close(): Promise<void>;
}

/**
 * Starts the UDP chat server: binds a datagram socket, handles datagrams one
 * at a time with {@linkcode handleDatagram} (stamped with `clock.now()`), and
 * every `sweepMs` of the clock calls `expire(clock.now())` on a
 * {@linkcode ClientRegistry}, logging who expired. An expired client gets
 * nothing more, and its messages are dropped until its next heartbeat.
 */
export function startChatServer(options: ChatServerOptions): ChatServer {
  // #region solution startChatServer
  const clock = options.clock ?? systemClock;
  const registry = new ClientRegistry(options.timeoutMs);
  const socket = Deno.listenDatagram({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    transport: "udp",
  });
  let closed = false;
  const sweep = clock.setInterval(() => {
    for (const client of registry.expire(clock.now())) {
      chatLog.info("{client} expired after {silence} ms of silence", {
        client: client.key,
        silence: Math.round(clock.now() - client.lastSeen),
      });
    }
  }, options.sweepMs ?? options.timeoutMs / 4);
  // One buffer for every datagram, reused: each is handled to the end before the next.
  const buffer = new Uint8Array(MAX_UDP_PAYLOAD);
  const receiving = (async () => {
    while (!closed) {
      let bytes: Uint8Array;
      let from: Deno.Addr;
      try {
        [bytes, from] = await socket.receive(buffer);
      } catch (error) {
        if (!closed) chatLog.error("receive failed, stopping: {error}", { error });
        return;
      }
      try {
        await handleDatagram(socket, registry, bytes, from as Deno.NetAddr, clock.now());
      } catch (error) {
        // One client we cannot send to must not stop the chat for the others.
        if (!closed) chatLog.warn("forwarding failed: {error}", { error });
      }
    }
  })();
  return {
    addr: socket.addr as Deno.NetAddr,
    clients: () => registry.list(),
    async close() {
      if (closed) return;
      closed = true;
      clock.clearInterval(sweep);
      socket.close();
      await receiving;
    },
  };
  // #endregion solution
}

/** Settings of {@linkcode startChatClient}. */
export interface ChatClientOptions {
  /** The chat server's address (an IP address: replies are matched against it). */
  server: { hostname: string; port: number };
  /**
   * The server's timeout T (ms): how long the server keeps a silent client
   * before it drops it. The client beats every `serverTimeoutMs / 3`.
   */
  serverTimeoutMs: number;
  /** Called with the text of each datagram from the server (trailing `\n` removed). */
  onMessage: (text: string) => void;
  /** Where time comes from (default {@linkcode systemClock}). */
  clock?: Clock;
}

/** A running chat client. */
export interface ChatClient {
  /** The client's own UDP address. */
  readonly addr: Deno.NetAddr;
  /** Sends one chat message (one datagram). */
  send(text: string): Promise<void>;
  /** Sends `quit`, stops the heartbeat timer, closes the socket, waits for the receive loop. */
  close(): Promise<void>;
}

/**
 * Starts a chat client on its own UDP socket (127.0.0.1, port 0). It sends
 * `hb` at once (so it is registered before it says anything), then every
 * `serverTimeoutMs / 3` from its own `clock.setInterval`, whatever the user does:
 * up to two heartbeats may be lost before the server's `serverTimeoutMs` runs out.
 * Datagrams from anyone but the server are ignored (UDP lets any program send
 * to your port). Each datagram from the server goes to `onMessage`.
 */
export function startChatClient(options: ChatClientOptions): ChatClient {
  // #region solution startChatClient
  const clock = options.clock ?? systemClock;
  const server: Deno.NetAddr = {
    transport: "udp",
    hostname: options.server.hostname,
    port: options.server.port,
  };
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  const sendText = (text: string): Promise<number> => {
    const sending = socket.send(encoder.encode(text), server);
    inFlight.add(sending);
    return sending.finally(() => inFlight.delete(sending));
  };
  // A lost heartbeat is no error (the next one follows); a closed socket is no error either.
  const beat = () => sendText("hb").catch(() => {});
  // The first heartbeat registers this client: a line sent before it lands would reach the
  // server from a stranger, so send() waits for it.
  const registered = beat();
  const heartbeat = clock.setInterval(beat, options.serverTimeoutMs / 3);
  const receiving = (async () => {
    while (!closed) {
      let bytes: Uint8Array;
      let from: Deno.Addr;
      try {
        [bytes, from] = await socket.receive();
      } catch {
        return; // closed
      }
      const sender = from as Deno.NetAddr;
      if (sender.hostname !== server.hostname || sender.port !== server.port) continue;
      options.onMessage(datagramText(bytes));
    }
  })();
  return {
    addr: socket.addr as Deno.NetAddr,
    async send(text) {
      await registered;
      await sendText(text);
    },
    async close() {
      if (closed) return;
      clock.clearInterval(heartbeat);
      await sendText("quit").catch(() => {});
      closed = true;
      await Promise.allSettled(inFlight);
      socket.close();
      await receiving;
    },
  };
  // #endregion solution
}

// ─── Part 2: PING/PONG over TCP ─────────────────────────────────────────────

/** Settings of the idle deadline. */
export interface LivenessOptions {
  /** After this long (ms) without a byte from the peer, send `PING\n`. */
  idleMs: number;
  /** After a PING, close the connection if no byte arrives within this (ms). */
  pongTimeoutMs: number;
  /** Where time comes from (default {@linkcode systemClock}). */
  clock?: Clock;
  /** Abort to shut the connection down (server shutdown). */
  signal?: AbortSignal;
  /**
   * The longest line accepted from the peer, in bytes, not counting its `\n`
   * (default {@linkcode DEFAULT_MAX_LINE_BYTES}). A longer one ends the
   * connection ("line too long").
   */
  maxLineBytes?: number;
}

/** Why {@linkcode superviseConnection} ended. */
export type ConnectionEnding = "peer closed" | "no pong" | "shut down" | "line too long";

/** The longest line the ping server accepts by default: 8 KiB, not counting its `\n`. */
export const DEFAULT_MAX_LINE_BYTES = 8192;

/**
 * The most echo bytes that may still wait to be written to a peer when
 * {@linkcode superviseConnection} reads from it again (back-pressure).
 */
export const MAX_QUEUED_BYTES = 64 * 1024;

const PING = encoder.encode("PING\n");
const PONG = encoder.encode("PONG\n");
const NEWLINE = 0x0a;

/** True when `line` (bytes without its `\n`) is `word`, with or without a trailing `\r`. */
function lineIs(line: Uint8Array, word: string): boolean {
  const text = decoder.decode(line);
  return text === word || text === `${word}\r`;
}

/** Writes all of `bytes` (write() may take only part). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Serves one TCP connection of the ping server until it ends, then closes it:
 * - echoes every line (`\n`-terminated) back, except `PONG` lines;
 * - any byte from the peer (a PONG, a line, part of a line) is proof of life:
 *   it restarts the idle deadline and answers an outstanding PING;
 * - after `idleMs` of the clock without a byte, sends `PING\n`; if no byte
 *   arrives within `pongTimeoutMs` after it, closes the connection ("no pong");
 * - EOF from the peer ends it ("peer closed"); `signal` aborting ends it ("shut down");
 * - a line longer than `maxLineBytes` (its `\n` not counted) is not echoed:
 *   it ends the connection as soon as it is longer ("line too long"), even
 *   before its `\n` has come.
 * Back-pressure: read again only once at most {@linkcode MAX_QUEUED_BYTES} of
 * echoes still wait to be written (simplest: await the echoes of one read
 * before the next read), so a peer that never reads cannot fill the memory.
 * Once the connection has ended, write nothing more to it.
 * Turns on TCP keepalive too (`conn.setKeepAlive(true)`) — see the doc for why
 * that is not enough on its own. The PING and the echoes share one stream:
 * never let two writes interleave.
 */
export async function superviseConnection(
  conn: Deno.TcpConn,
  options: LivenessOptions,
): Promise<ConnectionEnding> {
  // #region solution superviseConnection
  const clock = options.clock ?? systemClock;
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  conn.setKeepAlive(true);
  let ending: ConnectionEnding | undefined;
  let idleTimer: TimerId;
  let pongTimer: TimerId;
  // One writer at a time: each write waits for the one before it. Once the
  // connection has ended, what is still queued is dropped, not written.
  let writing = Promise.resolve();
  const send = (bytes: Uint8Array) => {
    writing = writing.then(() => ending ? undefined : writeAll(conn, bytes)).catch(() => {});
  };
  const hangUp = (why: ConnectionEnding) => {
    if (ending) return;
    ending = why;
    clock.clearTimeout(idleTimer);
    clock.clearTimeout(pongTimer);
    conn.close(); // a pending read now fails, which ends the loop below
  };
  const heardFromPeer = () => {
    if (ending) return;
    clock.clearTimeout(pongTimer);
    pongTimer = undefined;
    clock.clearTimeout(idleTimer);
    idleTimer = clock.setTimeout(() => {
      send(PING);
      pongTimer = clock.setTimeout(() => hangUp("no pong"), options.pongTimeoutMs);
    }, options.idleMs);
  };
  const onAbort = () => hangUp("shut down");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  heardFromPeer(); // the deadline starts with the connection
  const buffer = new Uint8Array(4096);
  let pending = new Uint8Array(0);
  try {
    while (!ending) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        break; // we closed it (hangUp), or the peer reset it
      }
      if (n === null) break;
      heardFromPeer();
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(buffer.subarray(0, n), pending.length);
      let start = 0;
      for (let at = joined.indexOf(NEWLINE); at >= 0; at = joined.indexOf(NEWLINE, start)) {
        if (at - start > maxLineBytes) break; // too long: what is left is longer still
        const line = joined.subarray(start, at);
        if (!lineIs(line, "PONG")) send(joined.slice(start, at + 1));
        start = at + 1;
      }
      pending = joined.slice(start);
      // A line too long is refused, also before its \n comes: the memory per peer stays bounded.
      if (pending.length > maxLineBytes) {
        hangUp("line too long");
        break;
      }
      // Back-pressure: read more only once the echoes are out.
      await writing;
    }
    await writing;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    hangUp(ending ?? "peer closed");
  }
  return ending ?? "peer closed";
  // #endregion solution
}

/** A running ping server. */
export interface PingServer {
  /** The TCP address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, shuts every connection down, waits for all of them. */
  close(): Promise<void>;
}

/**
 * Starts the TCP ping server: listens (default 127.0.0.1, port 0) and runs
 * {@linkcode superviseConnection} for each accepted connection, logging the
 * peer's arrival and how its connection ended. `close()` must not hang on idle
 * connections: shut them down (abort their `signal`) and wait for them.
 *
 * What `accept()` may throw, and what the accept loop does then:
 * - the listener was closed (`close()`): the loop ends;
 * - the client reset while it waited in the queue (`isGoneBeforeAccept`
 *   from `"workbook"`): accept the next one at once;
 * - anything else — above all out of descriptors (EMFILE, ENFILE) — is not
 *   the client's doing and would fail again at once: log one warning, pause
 *   {@linkcode ACCEPT_PAUSE_MS} on the clock, then try again, doubling the
 *   pause after each further failure up to {@linkcode MAX_ACCEPT_PAUSE_MS}.
 *   The first accept that succeeds ends the episode (the next starts from
 *   10 ms again). `close()` during a pause ends the loop at once.
 */
export function startPingServer(
  options: LivenessOptions & { hostname?: string; port?: number },
): PingServer {
  // #region solution startPingServer
  const clock = options.clock ?? systemClock;
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const shutdown = new AbortController();
  const connections = new Set<Promise<void>>();
  // A pause of the accept loop: close() ends it early.
  let pauseTimer: TimerId;
  let endPause: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      endPause = resolve;
      pauseTimer = clock.setTimeout(resolve, ms);
    });
  const accepting = (async () => {
    let pauseMs = 0; // 0 while accept works; the last pause during an episode of failures
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (isListenerClosed(error)) return; // close() closed it
        if (isGoneBeforeAccept(error)) continue; // that client is gone; serve the next
        if (pauseMs === 0) {
          // The message only: formatting an error's stack may need a descriptor of its own.
          pingLog.warn("accept failed ({error}): pausing until it works again", {
            error: String(error),
          });
        }
        pauseMs = Math.min(pauseMs * 2 || ACCEPT_PAUSE_MS, MAX_ACCEPT_PAUSE_MS);
        await pause(pauseMs);
        continue;
      }
      pauseMs = 0; // the episode is over
      const peer = addressKey(conn.remoteAddr);
      pingLog.info("{peer} connected", { peer });
      const task = superviseConnection(conn, { ...options, signal: shutdown.signal })
        .then(
          (ending) => pingLog.info("{peer} disconnected: {ending}", { peer, ending }),
          (error) => pingLog.error("{peer} failed: {error}", { peer, error }),
        )
        .finally(() => connections.delete(task));
      connections.add(task);
    }
  })();
  return {
    addr: listener.addr,
    async close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      clock.clearTimeout(pauseTimer);
      endPause?.();
      await accepting;
      shutdown.abort();
      await Promise.all(connections);
    },
  };
  // #endregion solution
}

/**
 * The client side of PING/PONG: reads `\n`-terminated lines from `conn` until
 * EOF, answers each `PING` line with `PONG\n`, and passes every other line
 * (without its `\n` or `\r\n`) to `onLine`. Lines arrive in pieces, or several
 * in one read. Closes `conn` when it returns.
 */
export async function answerPings(
  conn: Deno.Conn,
  onLine: (line: string) => void,
): Promise<void> {
  // #region solution answerPings
  const buffer = new Uint8Array(4096);
  let pending = new Uint8Array(0);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return;
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(buffer.subarray(0, n), pending.length);
      let start = 0;
      for (let at = joined.indexOf(NEWLINE); at >= 0; at = joined.indexOf(NEWLINE, start)) {
        const line = joined.subarray(start, at);
        if (lineIs(line, "PING")) await writeAll(conn, PONG);
        else onLine(decoder.decode(line).replace(/\r$/, ""));
        start = at + 1;
      }
      pending = joined.slice(start);
    }
  } catch (error) {
    // The peer vanished mid-conversation: that ends the conversation, it is not a bug.
    if (
      !(error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe)
    ) {
      throw error;
    }
  } finally {
    conn.close();
  }
  // #endregion solution
}

/**
 * The chat server program: `deno task run 8 server --port 9000 [--timeout 3000]`,
 * then chat with `deno task run 8 client --port 9000` or `nc -u 127.0.0.1 9000`.
 */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["timeout"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const timeoutMs = Number(args.extra.timeout ?? 3000);
  const server = startChatServer({ hostname: args.host, port: args.port, timeoutMs });
  chatLog.info("listening on udp {addr}; clients expire after {timeoutMs} ms of silence", {
    addr: addressKey(server.addr),
    timeoutMs,
  });
  await untilInterrupted();
  await server.close();
  chatLog.info("stopped");
}

if (import.meta.main) await main();
