/**
 * Lesson 09 — a socketserver-style framework, the Deno way.
 *
 * One base server owns the loop (`serveForever`, `handleRequest`), the error
 * policy (`handleError`) and a graceful `shutdown` with a deadline. Four
 * servers share it and differ only in how a request arrives and how it ends:
 * a serial TCP server, a concurrent one (a task per connection), a UDP server
 * and a Unix-stream server. A request handler runs `setup`, `handle` and
 * `finish` for each request. On top of it: a broadcast echo server done right.
 *
 * `deno task lesson 9` grades it over real sockets. Read docs/09-socketserver.md first.
 *
 * @module
 */
import { ACCEPT_PAUSE_MS, isOutOfDescriptors, MAX_ACCEPT_PAUSE_MS, programLogger } from "workbook";

const log = programLogger("socketserver");
const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/** How long {@linkcode BaseServer.shutdown} waits for in-flight handlers unless told otherwise. */
export const DEFAULT_SHUTDOWN_MS = 5_000;

/** The longest line a {@linkcode StreamRequestHandler} reads unless told otherwise. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/** The most bytes a {@linkcode BroadcastServer} queues for one client unless told otherwise. */
export const DEFAULT_MAX_QUEUE_BYTES = 256 * 1024;

/** A TCP or UDP address to listen on. The host defaults to loopback, 127.0.0.1. */
export interface NetAddress {
  hostname?: string;
  port: number;
}

/** One request as the server received it, before a handler exists for it. */
export interface Incoming<Req> {
  request: Req;
  clientAddress: Deno.Addr;
}

/**
 * The request a datagram server gives its handler: one datagram, and the way back.
 * There is no connection: the reply goes out through the server's own socket,
 * addressed to the client.
 */
export interface Datagram {
  /** The datagram's bytes, exactly as one `send` of the client made them. */
  readonly data: Uint8Array;
  /** The server's socket (the one the datagram came in on). */
  readonly socket: Deno.DatagramConn;
  /** Sends `data` back to the client as one datagram. */
  reply(data: Uint8Array | string): Promise<void>;
}

/** A handler class: the server makes one handler per request, `new Handler(request, clientAddress, server)`. */
export type HandlerClass<Req> = new (
  request: Req,
  clientAddress: Deno.Addr,
  server: BaseServer<Req>,
) => BaseRequestHandler<Req>;

/** How {@linkcode BaseServer.shutdown} went. */
export interface ShutdownReport {
  /**
   * `"drained"`: every handler in flight finished before the deadline.
   * `"cut"`: the deadline passed; the requests still running were closed under their handlers.
   */
  outcome: "drained" | "cut";
  /** How many requests were cut off at the deadline (0 when drained). */
  cut: number;
}

/** Writes an address the way people do: `127.0.0.1:4000`, `[::1]:4000`, `unix:/tmp/a.sock`. */
export function addressText(addr: Deno.Addr): string {
  switch (addr.transport) {
    case "tcp":
    case "udp":
      return addr.hostname.includes(":")
        ? `[${addr.hostname}]:${addr.port}`
        : `${addr.hostname}:${addr.port}`;
    case "unix":
    case "unixpacket":
      // A client of a Unix socket usually has no path of its own.
      return `unix:${addr.path || "(unnamed)"}`;
    default:
      return addr.transport;
  }
}

/** Writes all of `data` to `conn`: one `write()` may take only part of it. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/**
 * Waits until every promise of `tasks` has settled or `ms` milliseconds have
 * passed, whichever comes first: `true` when they all settled in time. Its
 * timer is cleared either way (a forgotten timer keeps a program alive).
 */
export async function settledWithin(tasks: Promise<unknown>[], ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([Promise.allSettled(tasks).then(() => true), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Errors of one client's connection, not of the server: accepting goes on after them.
 * `NotConnected` is what `accept()` throws for a client that reset while it waited in the
 * listener's queue.
 */
export function isClientError(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.NotConnected;
}

/**
 * The handler of one request (Python's `BaseRequestHandler`). Subclass it and
 * override `setup`, `handle` and `finish`; each may be async. The server makes
 * one handler per request and calls {@linkcode BaseRequestHandler.run}.
 */
export class BaseRequestHandler<Req> {
  /**
   * @param request what the server received: a `Deno.Conn` for stream servers, a {@linkcode Datagram} for UDP
   * @param clientAddress who sent it
   * @param server the server that received it (shared state lives there)
   */
  constructor(
    readonly request: Req,
    readonly clientAddress: Deno.Addr,
    readonly server: BaseServer<Req>,
  ) {}

  /** Prepares the request (register the client, say hello). Default: nothing. */
  setup(): void | Promise<void> {}

  /** Serves the request. Default: nothing. */
  handle(): void | Promise<void> {}

  /** Cleans up after the request (unregister the client). Default: nothing. */
  finish(): void | Promise<void> {}

  /**
   * Runs the handler's life: `setup()`, then `handle()`, then `finish()`, each
   * awaited before the next begins.
   *
   * - `finish()` runs even when `handle()` throws; `run()` then rejects with
   *   `handle()`'s error, so the server can report it.
   * - When `setup()` throws, there is nothing to serve and nothing to undo:
   *   `handle()` and `finish()` are skipped and `run()` rejects with the error.
   */
  async run(): Promise<void> {
    throw new TodoError("BaseRequestHandler.run");
  }
}

/**
 * The base every server shares (Python's `BaseServer`): the loop, the error
 * policy, the bookkeeping of requests in flight, and shutdown. A server only
 * says how a request arrives ({@linkcode BaseServer.getRequest}), how it ends
 * ({@linkcode BaseServer.closeRequest}) and how it stops listening
 * ({@linkcode BaseServer.close}). By default requests are handled one at a
 * time ({@linkcode BaseServer.processRequest}).
 */
export abstract class BaseServer<Req> {
  /** The class whose instances handle the requests. */
  readonly handlerClass: HandlerClass<Req>;
  #stopping = false;
  /** Every request being handled now: its task (which never rejects) → its request. */
  readonly #inFlight = new Map<Promise<void>, Req>();
  /** The loop's last pause while out of descriptors, in ms (0: `getRequest()` works). */
  #acceptPauseMs = 0;

  constructor(handlerClass: HandlerClass<Req>) {
    this.handlerClass = handlerClass;
  }

  /** Where the server listens. */
  abstract get addr(): Deno.Addr;

  /** Waits for the next request. Rejects once the listening endpoint is closed. */
  protected abstract getRequest(): Promise<Incoming<Req>>;

  /** Ends one request for good: a stream server closes the connection; a datagram needs nothing. */
  protected abstract closeRequest(request: Req): void;

  /** Releases the listening endpoint (Python's `server_close`). Safe to call twice. */
  abstract close(): void;

  /** True once {@linkcode BaseServer.shutdown} has begun. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** How many requests are being handled right now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Stops new requests from arriving; shutdown calls it first. Default: close
   * the listening endpoint now, so a new client is refused at once.
   */
  protected stopAccepting(): void {
    this.close();
  }

  /**
   * Waits `ms` milliseconds: the loop's pause while the process is out of
   * descriptors. A timer; the grader overrides it to see the pauses without
   * waiting them out.
   */
  protected pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * Handles requests until {@linkcode BaseServer.shutdown} (or `close()`):
   * call {@linkcode BaseServer.handleRequest} until it says the server is done.
   * Resolves then; it rejects only on a server-level failure, never because
   * one request failed.
   */
  async serveForever(): Promise<void> {
    throw new TodoError("BaseServer.serveForever");
  }

  /**
   * Waits for one request and processes it (Python's `handle_request`).
   * Resolves `true` when the server can take another request, `false` when it
   * is done: it is stopping, or its listening endpoint is closed.
   *
   * 1. If the server is stopping, resolve `false` without waiting.
   * 2. `await this.getRequest()`. If that rejects because the server is stopping
   *    or was closed (`Deno.errors.BadResource`, `Deno.errors.Interrupted`):
   *    `false`. If it rejects with a client's own error ({@linkcode isClientError}:
   *    a client that reset before it was accepted): log it and resolve `true`.
   *    If the process is out of file descriptors (`isOutOfDescriptors(error)`,
   *    from `"workbook"`), the client is still queued in the kernel and asking
   *    again at once would spin: back off — `await this.pause(ms)`, with
   *    {@linkcode ACCEPT_PAUSE_MS} after the first failure, doubling after each
   *    further one up to {@linkcode MAX_ACCEPT_PAUSE_MS} — log one warning for
   *    the whole episode (at its first failure), and resolve `true`. Once
   *    `getRequest()` works again the episode is over: the next starts afresh.
   *    Anything else is a server failure: let it reject.
   * 3. A request that arrives while the server is already stopping is closed
   *    unhandled (`closeRequest`) and the answer is `false`.
   * 4. Otherwise `await this.processRequest(request, clientAddress)` and resolve `true`.
   */
  async handleRequest(): Promise<boolean> {
    throw new TodoError("BaseServer.handleRequest");
  }

  /**
   * Decides how a request is run. The base runs it to the end before the
   * loop takes the next one (serial): it returns the request's task.
   * The concurrent server overrides this.
   */
  protected processRequest(request: Req, clientAddress: Deno.Addr): Promise<void> {
    return this.runRequest(request, clientAddress);
  }

  /** Makes this request's handler and runs it (Python's `finish_request`). */
  protected async finishRequest(request: Req, clientAddress: Deno.Addr): Promise<void> {
    const handler = new this.handlerClass(request, clientAddress, this);
    await handler.run();
  }

  /**
   * Runs one request from start to end and keeps count of it. Returns its
   * task: a promise that settles when the request is over and NEVER rejects.
   *
   * The task: `await this.finishRequest(request, clientAddress)`; if that
   * throws, pass the error to `this.handleError(error, request, clientAddress)`
   * (and if the hook itself throws, log that); in every case end with
   * `this.closeRequest(request)`.
   *
   * Bookkeeping: put the task in the in-flight map (task → request) before
   * returning it, and take it out when it settles. `shutdown()` waits on that map.
   */
  protected runRequest(request: Req, clientAddress: Deno.Addr): Promise<void> {
    throw new TodoError("BaseServer.runRequest");
  }

  /**
   * Called with the error of a request whose handler failed (Python's
   * `handle_error`). Override it to count or report errors; it must not throw.
   *
   * The default logs one LogTape record (the module's `log`, made with
   * `programLogger`) naming the client's address ({@linkcode addressText}):
   * - at level `warning`, with just the error's text, when the connection was
   *   lost ({@linkcode isClientError}) or cut off by shutdown (`Interrupted` or
   *   `BadResource` while {@linkcode BaseServer.stopping}): those are expected;
   * - at level `error`, with the error itself (its stack helps), for anything else.
   */
  handleError(error: unknown, _request: Req, clientAddress: Deno.Addr): void {
    throw new TodoError("BaseServer.handleError");
  }

  /**
   * Stops the server gracefully and says how it went. It always resolves,
   * within about twice `deadlineMs`, whatever the handlers do. The policy:
   *
   * 1. Mark the server stopping and stop accepting (`this.stopAccepting()`):
   *    a new client is refused, and `serveForever()` returns.
   * 2. Wait up to `deadlineMs` (default {@linkcode DEFAULT_SHUTDOWN_MS}) for
   *    every request in flight ({@linkcode settledWithin}). If they all end:
   *    `close()` and resolve `{ outcome: "drained", cut: 0 }`.
   * 3. Otherwise cut off the requests still in flight: `closeRequest()` each
   *    (its handler's pending read or write fails, so it ends through its own
   *    `finish()`), wait up to `deadlineMs` more for them to settle, `close()`,
   *    and resolve `{ outcome: "cut", cut: <how many were cut> }`.
   */
  async shutdown(options: { deadlineMs?: number } = {}): Promise<ShutdownReport> {
    throw new TodoError("BaseServer.shutdown");
  }
}

/**
 * A server of byte streams: each accepted connection is one request, and the
 * request ends when the connection is closed. TCP and Unix-stream servers
 * differ only in the listener they give it.
 */
export abstract class StreamServer extends BaseServer<Deno.Conn> {
  readonly listener: Deno.Listener;
  #closed = false;

  constructor(listener: Deno.Listener, handlerClass: HandlerClass<Deno.Conn>) {
    super(handlerClass);
    this.listener = listener;
  }

  get addr(): Deno.Addr {
    return this.listener.addr;
  }

  protected async getRequest(): Promise<Incoming<Deno.Conn>> {
    const conn = await this.listener.accept();
    return { request: conn, clientAddress: conn.remoteAddr };
  }

  protected closeRequest(conn: Deno.Conn): void {
    try {
      conn.close();
    } catch {
      // The handler closed it already.
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.listener.close();
  }
}

/** A TCP server that handles one connection at a time (Python's `TCPServer`). */
export class TcpServer extends StreamServer {
  /** Listens on `address` (host 127.0.0.1 unless given; port 0 picks a free port). */
  constructor(address: NetAddress, handlerClass: HandlerClass<Deno.Conn>) {
    super(
      Deno.listen({ hostname: address.hostname ?? "127.0.0.1", port: address.port }),
      handlerClass,
    );
  }
}

/**
 * A TCP server with a task per connection (Python's `ThreadingTCPServer`,
 * the ThreadingMixIn analogue): it starts each request's handler and goes
 * straight back to accepting, so slow requests overlap.
 */
export class ConcurrentTcpServer extends TcpServer {
  /**
   * Starts the request's task ({@linkcode BaseServer.runRequest}) and returns
   * at once, without waiting for it. The task never rejects and the in-flight
   * map keeps track of it, so nothing is lost by not awaiting it here.
   */
  protected override processRequest(request: Deno.Conn, clientAddress: Deno.Addr): Promise<void> {
    throw new TodoError("ConcurrentTcpServer.processRequest");
  }
}

/** A Unix-domain stream server at a socket path, one connection at a time (Python's `UnixStreamServer`). */
export class UnixStreamServer extends StreamServer {
  /** Listens at `path`; Deno removes the socket file when the listener closes. */
  constructor(path: string, handlerClass: HandlerClass<Deno.Conn>) {
    super(Deno.listen({ transport: "unix", path }), handlerClass);
  }
}

/**
 * A UDP server (Python's `UDPServer`): each datagram is one request, handled
 * one at a time. There is no connection to close, and the socket is also the
 * way every handler replies, so it stays open until shutdown's drain is over.
 */
export class UdpServer extends BaseServer<Datagram> {
  readonly socket: Deno.DatagramConn;
  #closed = false;

  /** Binds `address` (host 127.0.0.1 unless given; port 0 picks a free port). */
  constructor(address: NetAddress, handlerClass: HandlerClass<Datagram>) {
    super(handlerClass);
    this.socket = Deno.listenDatagram({
      hostname: address.hostname ?? "127.0.0.1",
      port: address.port,
      transport: "udp",
    });
  }

  get addr(): Deno.Addr {
    return this.socket.addr;
  }

  /**
   * Receives the next datagram and makes it a request: `data` is its bytes,
   * `socket` the server's socket, and `reply(data)` sends one datagram back
   * to the address it came from (strings are sent as UTF-8). The client
   * address is the sender's.
   */
  protected async getRequest(): Promise<Incoming<Datagram>> {
    throw new TodoError("UdpServer.getRequest");
  }

  protected closeRequest(_request: Datagram): void {
    // A datagram is over when its handler is: nothing to close.
  }

  protected override stopAccepting(): void {
    // Handlers in flight reply through the socket: it closes after the drain
    // (shutdown calls close()). The loop stops on its own at the next request.
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.close();
  }
}

/** Thrown by {@linkcode StreamRequestHandler.readLine} when a line exceeds its limit. */
export class LineTooLongError extends Error {
  override name = "LineTooLongError";
  constructor(readonly maxBytes: number) {
    super(`a line longer than ${maxBytes} bytes (no newline within the limit)`);
  }
}

/**
 * A handler of a byte stream (Python's `StreamRequestHandler`) with the two
 * helpers a line protocol needs: a bounded line reader and a write-all.
 */
export class StreamRequestHandler extends BaseRequestHandler<Deno.Conn> {
  #pending: Uint8Array = new Uint8Array(0);

  /**
   * Reads one `\n`-terminated line (newline included). Resolves `null` at the
   * end of the stream; bytes after the last newline are not a line and are
   * dropped. Throws {@linkcode LineTooLongError} when `maxBytes` bytes have
   * arrived without a newline: a line, newline included, is at most `maxBytes`.
   */
  async readLine(maxBytes: number = DEFAULT_MAX_LINE_BYTES): Promise<Uint8Array | null> {
    const chunk = new Uint8Array(4096);
    while (true) {
      const end = this.#pending.indexOf(NEWLINE);
      if (end >= 0 && end < maxBytes) {
        const line = this.#pending.slice(0, end + 1);
        this.#pending = this.#pending.slice(end + 1);
        return line;
      }
      if (end >= 0 || this.#pending.length >= maxBytes) throw new LineTooLongError(maxBytes);
      const n = await this.request.read(chunk);
      if (n === null) return null;
      const joined = new Uint8Array(this.#pending.length + n);
      joined.set(this.#pending);
      joined.set(chunk.subarray(0, n), this.#pending.length);
      this.#pending = joined;
    }
  }

  /** Writes all of `data` to the client. */
  async write(data: Uint8Array | string): Promise<void> {
    await writeAll(this.request, data);
  }
}

/** The echo handler (the `echo` program): sends every byte back, logs who comes and goes. */
export class EchoHandler extends StreamRequestHandler {
  override setup(): void {
    log.info("{client} connected", { client: addressText(this.clientAddress) });
  }

  override async handle(): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const n = await this.request.read(buffer);
      if (n === null) return;
      await this.write(buffer.subarray(0, n));
    }
  }

  override finish(): void {
    log.info("{client} disconnected", { client: addressText(this.clientAddress) });
  }
}

/** The handler of one broadcast client: every line it sends goes to every client. */
export class BroadcastHandler extends StreamRequestHandler {
  declare readonly server: BroadcastServer;

  /** Joins the audience: add this client's connection to `this.server.clients`. */
  override setup(): void {
    throw new TodoError("BroadcastHandler.setup");
  }

  /**
   * Reads lines of at most `this.server.maxLineBytes` bytes and broadcasts
   * each, whole, with `this.server.broadcast(line)`, until the client ends
   * the stream; then waits until the lines queued for this client have been
   * written (`this.server.flushed(this.request)`) and returns: a client that
   * half-closes still gets them. A line that is too long
   * ({@linkcode LineTooLongError}) is not broadcast: answer
   * `error: line longer than <max> bytes\n` to this client alone and return
   * (the server then closes the connection).
   */
  override async handle(): Promise<void> {
    throw new TodoError("BroadcastHandler.handle");
  }

  /** Leaves the audience: remove this client's connection from `this.server.clients`. */
  override finish(): void {
    throw new TodoError("BroadcastHandler.finish");
  }
}

/** Options of a {@linkcode BroadcastServer}. */
export interface BroadcastOptions {
  /** The longest line accepted, newline included (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  maxLineBytes?: number;
  /**
   * The most bytes queued for one client and not yet written (default
   * {@linkcode DEFAULT_MAX_QUEUE_BYTES}); a client a line would take past it is dropped.
   */
  maxQueueBytes?: number;
}

/** What a {@linkcode BroadcastServer} has queued for one client. */
export interface OutputQueue {
  /** The lines waiting for their turn, oldest first. */
  lines: Uint8Array[];
  /** Bytes of the lines queued and not yet completely written (those being written count too). */
  bytes: number;
  /** The running writer of this queue ({@linkcode BroadcastServer.drain}), once started. */
  writer?: Promise<void>;
}

/** The bytes of every array of `parts`, one after another, in one new array. */
function joinBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * The broadcast echo server: each line a client sends is echoed to every
 * connected client, the sender included. A concurrent TCP server whose
 * handler is {@linkcode BroadcastHandler}.
 *
 * Its output policy: a client gets its lines through its own bounded queue
 * and writer. A client that does not read holds up no one but itself, and
 * once a line would take its queue past `maxQueueBytes`, it is dropped
 * (disconnected).
 */
export class BroadcastServer extends ConcurrentTcpServer {
  /** The connections of every client that gets the broadcasts. */
  readonly clients: Set<Deno.Conn> = new Set();
  /** The longest line accepted, newline included. */
  readonly maxLineBytes: number;
  /** The most bytes queued for one client; a line that would pass it drops the client. */
  readonly maxQueueBytes: number;
  /** Each client's output queue. A client with nothing queued has no entry. */
  readonly #queues = new Map<Deno.Conn, OutputQueue>();
  /** Connections dropped by the server: their handlers' failures are no news. */
  readonly #dropped = new WeakSet<Deno.Conn>();

  constructor(address: NetAddress, options: BroadcastOptions = {}) {
    super(address, BroadcastHandler);
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
  }

  /** Bytes queued for `conn` and not yet written (0 when nothing is). */
  queuedBytes(conn: Deno.Conn): number {
    return this.#queues.get(conn)?.bytes ?? 0;
  }

  /** How many clients have a queue now (the entries of the queue map). */
  get queuedClients(): number {
    return this.#queues.size;
  }

  /** Resolves once nothing is queued for `conn` any more (it never rejects). */
  flushed(conn: Deno.Conn): Promise<void> {
    return this.#queues.get(conn)?.writer ?? Promise.resolve();
  }

  /**
   * Queues `line` for every client in `clients` and returns at once: it never
   * waits for a client, and never throws.
   *
   * - A line that would take a client's queued bytes ({@linkcode BroadcastServer.queuedBytes})
   *   past `maxQueueBytes` is not queued: that client does not read fast
   *   enough (or at all), so {@linkcode BroadcastServer.dropClient} it.
   *   Exactly `maxQueueBytes` is still fine.
   * - Otherwise add the line to the client's {@linkcode OutputQueue} in
   *   `#queues` (make one when it has none), count its bytes, and start the
   *   queue's writer (`this.drain(conn, queue)`) unless it runs already.
   *
   * Lines are queued in the order `broadcast` is called, so every client gets
   * them in the same order, and one writer per client means two lines never
   * interleave on a connection.
   */
  broadcast(line: Uint8Array): void {
    throw new TodoError("BroadcastServer.broadcast");
  }

  /**
   * The writer of one client's queue; it never rejects. While lines are
   * queued and the client is still in `clients`: take every queued line at
   * once, write them with one `writeAll` (`joinBytes` joins them), and take
   * their bytes off the queue. A write that fails means a dead client:
   * {@linkcode BroadcastServer.dropClient} it. However it ends (nothing left,
   * the client left or was dropped, a failed write), delete the queue from
   * `#queues`: lines queued for a client that is gone are never written.
   */
  protected async drain(conn: Deno.Conn, queue: OutputQueue): Promise<void> {
    throw new TodoError("BroadcastServer.drain");
  }

  /**
   * Removes a client from the audience, closes its connection and logs why;
   * a client already dropped or gone is left alone. Its handler's pending read
   * then fails and the handler ends; that failure is not reported again.
   */
  dropClient(conn: Deno.Conn, reason: unknown): void {
    if (!this.clients.delete(conn)) return;
    this.#dropped.add(conn);
    let peer = "a client";
    try {
      peer = addressText(conn.remoteAddr);
    } catch {
      // Closed already: no address to show.
    }
    log.info("dropped {peer}: {reason}", { peer, reason: String(reason) });
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }

  /** As {@linkcode BaseServer.handleError}, but quiet about the clients it dropped itself. */
  override handleError(error: unknown, request: Deno.Conn, clientAddress: Deno.Addr): void {
    if (this.#dropped.has(request)) return;
    super.handleError(error, request, clientAddress);
  }
}
