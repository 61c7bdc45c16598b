/**
 * Lesson 07 — UDP: datagrams, and reliability on top.
 *
 * Part 1 is plain UDP: an echo server, reading a datagram into a buffer that
 * may be too small, and a "connected" client socket. Part 2 builds a tiny
 * reliable request/reply protocol on top: a stop-and-wait client that
 * retransmits, and a server that executes each request once however often it
 * arrives. Read docs/07-udp.md first; `deno task lesson 7` grades it.
 *
 * Run as a program, this file is the echo server:
 * `deno task run 7 echo --port 9000`, then `nc -u 127.0.0.1 9000`.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";

const log = programLogger("udp");

/**
 * The most bytes one UDP datagram can carry over IPv4: 65,535 (the IP packet
 * limit) − 20 (IP header) − 8 (UDP header). `send` of anything bigger fails
 * with "Message too long".
 */
export const MAX_UDP_PAYLOAD = 65_507;

/** A host and port to send to. */
export interface UdpAddress {
  hostname: string;
  port: number;
}

/** Writes `127.0.0.1:9000` (and `[::1]:9000`) for logs and error messages. */
export function addressText(addr: UdpAddress): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** True when two addresses name the same socket: same host and same port. */
export function sameAddress(a: UdpAddress, b: UdpAddress): boolean {
  return a.hostname === b.hostname && a.port === b.port;
}

// ─── Part 1: datagrams ──────────────────────────────────────────────────────

/** A running UDP server. */
export interface UdpServer {
  /** Where the server receives: send datagrams here. */
  readonly addr: Deno.NetAddr;
  /** Stops the server: closes its socket and waits for its receive loop to end. */
  close(): Promise<void>;
}

/**
 * Starts a UDP echo server on `hostname` (default `127.0.0.1`) and `port`
 * (default 0: the kernel picks one).
 *
 * For every datagram that arrives, send the very same bytes back as one
 * datagram **to the address it came from** (the second element of what
 * `receive()` gives you). Keep every datagram whole, including an empty one:
 * a zero-length datagram is a message too, not an end of stream.
 *
 * The receive loop ends when `close()` closes the socket (a pending
 * `receive()` then rejects); `close()` waits for the loop to finish.
 */
export function startEchoServer(options: { hostname?: string; port?: number } = {}): UdpServer {
  // #region solution startEchoServer
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const loop = (async () => {
    while (true) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await socket.receive();
      } catch {
        return; // the socket was closed
      }
      log.info("{bytes} bytes from {peer}, echoing", {
        bytes: data.length,
        peer: addressText(from as Deno.NetAddr),
      });
      // Reply to whoever sent this datagram: with UDP every datagram carries its own sender.
      await socket.send(data, from).catch((error) => log.warn("echo failed: {error}", { error }));
    }
  })();
  return {
    addr: socket.addr as Deno.NetAddr,
    async close() {
      socket.close();
      await loop;
    },
  };
  // #endregion solution
}

/** One datagram read by {@linkcode receiveAtMost}. */
export interface Received {
  /** The bytes kept: the whole datagram, or its first `maxBytes` bytes when it was longer. */
  data: Uint8Array;
  /** Who sent it. */
  from: Deno.NetAddr;
  /** True when the datagram was longer than `maxBytes` and the rest was lost. */
  truncated: boolean;
}

/**
 * Receives one datagram on `socket`, keeping at most `maxBytes` of it, and
 * says whether it was cut.
 *
 * `socket.receive(buffer)` reads one datagram into your buffer. If the
 * datagram is longer than the buffer, the kernel copies what fits and
 * **throws the rest away** — the next receive gets the next datagram, not the
 * tail of this one — and nothing tells you it happened. Find out anyway: read
 * into a buffer one byte larger than `maxBytes`; if that extra byte was
 * filled, the datagram was longer than `maxBytes`.
 */
export async function receiveAtMost(
  socket: Deno.DatagramConn,
  maxBytes: number,
): Promise<Received> {
  // #region solution receiveAtMost
  const buffer = new Uint8Array(maxBytes + 1);
  const [data, from] = await socket.receive(buffer);
  const truncated = data.length > maxBytes;
  return {
    data: data.slice(0, Math.min(data.length, maxBytes)),
    from: from as Deno.NetAddr,
    truncated,
  };
  // #endregion solution
}

/**
 * A UDP socket "connected" to one peer, the way `connect()` on a datagram
 * socket works in C or Python: sends go to that peer without naming it, and
 * only datagrams **from** that peer are received.
 *
 * Deno has no connected UDP socket, so this class does it in user space: it
 * binds its own socket on 127.0.0.1 (port 0) and filters what arrives by the
 * sender's address. Unlike a kernel-connected socket it cannot report
 * "connection refused" (the ICMP error a connected socket gets when nobody
 * listens at the peer's port): a datagram to a closed port just vanishes.
 */
export class ConnectedUdpSocket {
  /** The bound socket underneath. */
  readonly socket: Deno.DatagramConn;
  /** The one peer this socket talks to. */
  readonly remoteAddr: Deno.NetAddr;
  /** Datagrams that came from some other address and were ignored. */
  ignored = 0;
  /**
   * A `receive()` that is still waiting, left over from a {@linkcode receiveWithin}
   * call that timed out. Reuse it: see receiveWithin.
   */
  #pending: Promise<Uint8Array> | undefined;

  /** Binds a fresh socket on 127.0.0.1 for talking to `remote`. */
  constructor(remote: UdpAddress) {
    this.remoteAddr = { transport: "udp", hostname: remote.hostname, port: remote.port };
    this.socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  }

  /** This socket's own address (what the peer sees as the sender). */
  get localAddr(): Deno.NetAddr {
    return this.socket.addr as Deno.NetAddr;
  }

  /** Sends `data` as one datagram to the peer. */
  async send(data: Uint8Array): Promise<void> {
    // #region solution ConnectedUdpSocket.send
    await this.socket.send(data, this.remoteAddr);
    // #endregion solution
  }

  /**
   * The next datagram **from the peer** (same hostname *and* same port).
   * Datagrams from any other address are dropped and counted in `ignored`:
   * anyone can send to a UDP port, and a different port on the same host is
   * a different sender.
   */
  async receive(): Promise<Uint8Array> {
    // #region solution ConnectedUdpSocket.receive
    while (true) {
      const [data, from] = await this.socket.receive();
      if (from.transport === "udp" && sameAddress(from, this.remoteAddr)) return data;
      this.ignored++;
      log.debug("ignored {bytes} bytes from {stranger}", {
        bytes: data.length,
        stranger: addressText(from as Deno.NetAddr),
      });
    }
    // #endregion solution
  }

  /**
   * The next datagram from the peer, or `undefined` when none arrives within
   * `ms` milliseconds.
   *
   * A `receive()` cannot be cancelled. If you start one, give up on it after
   * `ms`, and start another next time, the abandoned one is still waiting:
   * it will take the next datagram, and nobody reads its result — a lost
   * reply. So keep the unfinished `receive()` in `#pending` and race the
   * *same* promise against the next timer; clear it once it has delivered.
   * (Clear your timer too, or it keeps the program alive.)
   */
  async receiveWithin(ms: number): Promise<Uint8Array | undefined> {
    // #region solution ConnectedUdpSocket.receiveWithin
    this.#pending ??= this.receive();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
    });
    try {
      const data = await Promise.race([this.#pending, timeout]);
      if (data !== undefined) this.#pending = undefined;
      return data;
    } finally {
      clearTimeout(timer);
    }
    // #endregion solution
  }

  /** Closes the socket and waits for a receive still pending to end. */
  async close(): Promise<void> {
    try {
      this.socket.close();
    } catch {
      // Already closed.
    }
    // Closing makes a pending receive() reject; that is expected, not an error.
    await this.#pending?.catch(() => {});
    this.#pending = undefined;
  }
}

// ─── Part 2: reliability on top ─────────────────────────────────────────────
//
// The wire format of a request and of its reply: the request id in decimal,
// a newline, then the payload bytes.
//
//   "17\nhello"  → request 17, payload "hello"
//   "17\nHELLO"  ← reply to request 17
//
// A reply carries its request's id, so a client can tell the answer to
// *this* request from a late answer to an earlier one.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 0x0a;

/** The largest request id (ids are unsigned 32-bit numbers). */
export const MAX_REQUEST_ID = 0xffff_ffff;

/** A request or reply: its id and its payload. */
export interface Message {
  id: number;
  payload: Uint8Array;
}

/** Encodes a request or reply: `"<id>\n"` followed by the payload bytes. */
export function encodeMessage(id: number, payload: Uint8Array): Uint8Array {
  if (!Number.isInteger(id) || id < 0 || id > MAX_REQUEST_ID) {
    throw new RangeError(`request ids are 0..${MAX_REQUEST_ID}, got ${id}`);
  }
  const head = encoder.encode(`${id}\n`);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/**
 * Decodes a request or reply, or returns `undefined` when the datagram is not
 * one (no newline within 11 bytes, or the id is not 1–10 decimal digits).
 * Anyone can send anything to a UDP port: treat malformed datagrams as noise.
 */
export function decodeMessage(datagram: Uint8Array): Message | undefined {
  const newline = datagram.subarray(0, 11).indexOf(NEWLINE);
  if (newline < 1) return undefined;
  const digits = decoder.decode(datagram.subarray(0, newline));
  if (!/^\d+$/.test(digits)) return undefined;
  const id = Number(digits);
  if (id > MAX_REQUEST_ID) return undefined;
  return { id, payload: datagram.slice(newline + 1) };
}

/** Computes the reply payload of one request. The server calls it once per request. */
export type RequestHandler = (
  payload: Uint8Array,
  request: { id: number; from: Deno.NetAddr },
) => Uint8Array | Promise<Uint8Array>;

/** Settings of {@linkcode startReliableServer}. */
export interface ReliableServerOptions {
  /** Default `127.0.0.1`. */
  hostname?: string;
  /** Default 0 (the kernel picks). */
  port?: number;
  /** Runs each request. */
  handler: RequestHandler;
  /** How many replies to keep for replay; the oldest goes first. Default 256. */
  cacheSize?: number;
}

/** Counters of a {@linkcode ReliableServer}. */
export interface ReliableServerStats {
  /** Requests the handler ran. */
  executed: number;
  /** Datagrams that repeated a request already run, answered from the cache. */
  duplicates: number;
  /** Datagrams that were not a request at all (ignored). */
  malformed: number;
}

/** A running request/reply server that runs each request once. */
export interface ReliableServer extends UdpServer {
  readonly stats: ReliableServerStats;
  /** How many replies the cache holds now; never more than `cacheSize`. */
  readonly cachedReplies: number;
}

/** The default number of replies a {@linkcode ReliableServer} keeps. */
export const DEFAULT_CACHE_SIZE = 256;

/**
 * Starts a request/reply server over UDP that executes each request **once**,
 * however many copies of it arrive.
 *
 * Clients retransmit when a reply is late, and the network duplicates, so the
 * same request (same sender, same id) can arrive many times, also long after
 * later ones. For each datagram:
 *
 * 1. Decode it with {@linkcode decodeMessage}; if it is not a message, count
 *    it in `stats.malformed` and ignore it (do not crash, do not reply).
 * 2. A request is known by **sender address and id together**: two clients
 *    may both send id 1.
 * 3. Seen before and still cached? Send the cached reply again (count
 *    `stats.duplicates`); do not call the handler.
 * 4. New? Run `handler(payload, { id, from })` once (count `stats.executed`),
 *    remember the encoded reply, and send it — to the sender's address.
 * 5. Keep at most `cacheSize` replies (default 256): when full, forget the
 *    oldest. A `Map` remembers insertion order.
 *
 * Handle one datagram at a time (await the handler before the next receive):
 * then a copy that arrives while its request runs waits in the socket's queue
 * and finds the reply cached.
 */
export function startReliableServer(options: ReliableServerOptions): ReliableServer {
  // #region solution startReliableServer
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
  });
  const stats: ReliableServerStats = { executed: 0, duplicates: 0, malformed: 0 };
  const replies = new Map<string, Uint8Array>();

  const serveOne = async (datagram: Uint8Array, from: Deno.NetAddr) => {
    const request = decodeMessage(datagram);
    if (!request) {
      stats.malformed++;
      log.info("ignored {bytes} bytes from {peer}: not a request", {
        bytes: datagram.length,
        peer: addressText(from),
      });
      return;
    }
    // Ids are chosen by each client: only sender and id together name one request.
    const key = `${addressText(from)}#${request.id}`;
    let reply = replies.get(key);
    if (reply) {
      stats.duplicates++;
      log.info("request {id} from {peer} again: replaying the reply", {
        id: request.id,
        peer: addressText(from),
      });
    } else {
      const payload = await options.handler(request.payload, { id: request.id, from });
      stats.executed++;
      reply = encodeMessage(request.id, payload);
      replies.set(key, reply);
      if (replies.size > cacheSize) replies.delete(replies.keys().next().value!);
      log.info("request {id} from {peer} executed", { id: request.id, peer: addressText(from) });
    }
    await socket.send(reply, from);
  };

  const loop = (async () => {
    while (true) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await socket.receive();
      } catch {
        return; // the socket was closed
      }
      try {
        await serveOne(data, from as Deno.NetAddr);
      } catch (error) {
        // One failing request must not stop the server; the client will retry it.
        log.warn("request from {peer} failed: {error}", {
          peer: addressText(from as Deno.NetAddr),
          error,
        });
      }
    }
  })();

  return {
    addr: socket.addr as Deno.NetAddr,
    stats,
    get cachedReplies() {
      return replies.size;
    },
    async close() {
      socket.close();
      await loop;
    },
  };
  // #endregion solution
}

/** Thrown by {@linkcode ReliableClient.request} when every try went unanswered. */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
  constructor(
    readonly id: number,
    readonly tries: number,
    readonly timeoutMs: number,
    readonly server: UdpAddress,
  ) {
    super(
      `request ${id} to ${addressText(server)} got no reply after ${tries} tries ` +
        `(${timeoutMs} ms each): is the server running, and reachable?`,
    );
  }
}

/** Settings of a {@linkcode ReliableClient}. */
export interface ReliableClientOptions {
  /** The server to talk to. */
  server: UdpAddress;
  /** How long to wait for a reply before sending the request again, in ms. Default 50. */
  timeoutMs?: number;
  /** How many times to send a request in all (the first send included). Default 5. */
  maxTries?: number;
}

/** Counters of a {@linkcode ReliableClient}. */
export interface ReliableClientStats {
  /** Requests started. */
  requests: number;
  /** Sends beyond the first of each request. */
  retransmissions: number;
  /** Replies that arrived with an id other than the one awaited (ignored). */
  staleReplies: number;
}

/**
 * A stop-and-wait request/reply client: one request at a time; each waits for
 * its reply, sending again when the reply is late.
 */
export class ReliableClient {
  readonly timeoutMs: number;
  readonly maxTries: number;
  readonly stats: ReliableClientStats = { requests: 0, retransmissions: 0, staleReplies: 0 };
  /** The socket to the server: use its send and receiveWithin. */
  readonly conn: ConnectedUdpSocket;
  /** The id the next request gets. */
  nextId = 1;

  constructor(options: ReliableClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 50;
    this.maxTries = options.maxTries ?? 5;
    this.conn = new ConnectedUdpSocket(options.server);
  }

  /** This client's address, as the server sees it. */
  get localAddr(): Deno.NetAddr {
    return this.conn.localAddr;
  }

  /**
   * Sends one request and returns its reply's payload.
   *
   * 1. Give the request the next id (`nextId`, then add one). Every copy of
   *    this request carries the **same** id: that is how the server knows a
   *    retransmission from a new request. Count `stats.requests`.
   * 2. Send `encodeMessage(id, payload)` and wait up to `timeoutMs` for the
   *    reply with `this.conn.receiveWithin`.
   * 3. A reply whose id is not this request's is late news about an earlier
   *    request (or a duplicate of its reply): count it in `stats.staleReplies`
   *    and keep waiting — for what is left of this try's `timeoutMs`, not a
   *    fresh one.
   * 4. No matching reply in time: send the same datagram again (count
   *    `stats.retransmissions`). After `maxTries` sends in all, throw a
   *    {@linkcode RequestTimeoutError}.
   *
   * Call it again only after the previous call has settled.
   */
  async request(payload: Uint8Array): Promise<Uint8Array> {
    // #region solution ReliableClient.request
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    this.stats.requests++;
    const datagram = encodeMessage(id, payload);
    for (let attempt = 1; attempt <= this.maxTries; attempt++) {
      if (attempt > 1) this.stats.retransmissions++;
      await this.conn.send(datagram);
      const deadline = performance.now() + this.timeoutMs;
      while (true) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        const reply = await this.conn.receiveWithin(left);
        if (reply === undefined) break;
        const message = decodeMessage(reply);
        if (message?.id === id) return message.payload;
        this.stats.staleReplies++;
      }
      log.debug("request {id}: no reply within {ms} ms (try {attempt})", {
        id,
        ms: this.timeoutMs,
        attempt,
      });
    }
    throw new RequestTimeoutError(id, this.maxTries, this.timeoutMs, this.conn.remoteAddr);
    // #endregion solution
  }

  /** Closes the client's socket. */
  async close(): Promise<void> {
    await this.conn.close();
  }
}

/** The echo program: `deno task run 7 echo --port 9000`, then `nc -u 127.0.0.1 9000`. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9000 });
  await setupLogging(args.verbose ? "debug" : "info");
  const server = startEchoServer({ hostname: args.host, port: args.port });
  log.info("UDP echo server on {addr} (no connections: each datagram stands alone)", {
    addr: addressText(server.addr),
  });
  await untilInterrupted();
  await server.close();
  log.info("stopped");
}

if (import.meta.main) await main();
