/**
 * Lesson 11 — select, poll and epoll: one thread, many connections.
 *
 * Three echo servers that serve every client from one loop, each on a
 * different readiness API of the kernel (select, poll, epoll — the last one
 * level- or edge-triggered), and a small reusable event loop on epoll with
 * timers that lesson 12 builds on. Everything goes through libc with FFI
 * ("workbook/libc"): raw descriptors, no Deno.listen.
 *
 * The grader's clients are Deno sockets in the same process, on the same
 * thread. So a loop here must never block that thread: poll and epoll wait on
 * an FFI worker thread (`pollAsync`, `epollWaitAsync`) and are woken by a pipe
 * when the server closes; select (which has no worker-thread binding) looks
 * with a zero timeout and yields between looks. docs/11-select-poll-epoll.md
 * explains the design.
 *
 * Read docs/11-select-poll-epoll.md first; `deno task lesson 11` grades this file.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import {
  isOutOfDescriptors,
  parseProgramArgs,
  programLogger,
  setupLogging,
  untilInterrupted,
} from "workbook";
import {
  accept,
  close,
  EBADF,
  ECONNABORTED,
  ECONNRESET,
  ENOENT,
  EPIPE,
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
  epollWaitAsync,
  ErrnoError,
  ETIMEDOUT,
  FD_SETSIZE,
  type Listener,
  listenTcp,
  pipe,
  pollAsync,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type PollRequest,
  read,
  select,
  send,
  setSocketOption,
  SO_SNDBUF,
  SOL_SOCKET,
  sys,
  write,
} from "workbook/libc";

const log = programLogger("multiplex");

/** The four servers of the lesson. */
export type EchoKind = "select" | "poll" | "epoll" | "epoll-et";

/** Where and how an echo server runs. */
export interface EchoOptions {
  /** Default `"127.0.0.1"`: a lesson server is not for the network. */
  hostname?: string;
  /** Default 0: the kernel picks a free port (see `server.addr.port`). */
  port?: number;
  /** Size of the one buffer every read(2) goes into. Default {@linkcode READ_BUFFER_BYTES}. */
  readBufferBytes?: number;
  /**
   * SO_SNDBUF for every connection (the kernel doubles it; default: the
   * kernel's own, which grows to megabytes). A small one makes send() say
   * EAGAIN early, so backpressure shows without moving megabytes.
   */
  sendBufferBytes?: number;
}

/** Options of the epoll server. */
export interface EpollEchoOptions extends EchoOptions {
  /** EPOLLET: be told about changes (edges) instead of states (levels). Default false. */
  edgeTriggered?: boolean;
}

/** A running echo server: every byte a client sends comes back to it, in order. */
export interface EchoServer {
  /** Which multiplexer the server runs on. */
  readonly kind: EchoKind;
  /** Where it listens. */
  readonly addr: { hostname: string; port: number };
  /** Every descriptor the server holds open: listener, wake-up pipe, epoll fd, clients. */
  openFds(): number[];
  /** The descriptors of the live client connections. */
  clientFds(): number[];
  /** What the last (or current) wait watches: the fd sets, the pollfd list, the interest list. */
  watchedFds(): number[];
  /** Bytes read from clients and not yet echoed (waiting for a client to read). */
  pendingOutputBytes(): number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections closed at once because select could not watch them (fd >= FD_SETSIZE). */
  readonly refused: number;
  /** The loop's waits so far: one per setting of `state.watched` (the grader counts them). */
  readonly waits: number;
  /** Settles when the loop ends: resolves after close(), rejects if the loop crashed. */
  readonly finished: Promise<void>;
  /** Stops the loop, closes every descriptor, resolves when all is closed. Idempotent. */
  close(): Promise<void>;
}

/** Default read buffer: 16 KiB per read(2). */
export const READ_BUFFER_BYTES = 16 * 1024;

/**
 * A client whose echo is this far behind is not read from until it catches
 * up: the server keeps at most this much of anyone's data (backpressure).
 */
export const HIGH_WATER_BYTES = 256 * 1024;

/** Longest pause between two looks of the select server when nothing happens. */
export const SELECT_IDLE_MAX_MS = 8;

/**
 * Thrown when select() would have to watch a descriptor it cannot hold: an
 * fd_set is a bitmap of FD_SETSIZE (1024) bits, so fds 0..1023 only.
 */
export class FdSetsizeError extends RangeError {
  override name = "FdSetsizeError";
  /** The descriptor that is out of select's reach. */
  readonly fd: number;
  constructor(fd: number, what = "a descriptor") {
    super(
      `select() cannot watch ${what} with fd ${fd}: an fd_set holds FD_SETSIZE=${FD_SETSIZE} ` +
        `bits (fds 0..${FD_SETSIZE - 1}). Use poll or epoll when descriptors go past ${
          FD_SETSIZE - 1
        }.`,
    );
    this.fd = fd;
  }
}

// ---------------------------------------------------------------------------
// Given: the parts every server shares (read them; you do not write them)
// ---------------------------------------------------------------------------

/** Errors that mean "this client is gone", not "the server is broken". */
function isPeerGone(error: unknown): boolean {
  return error instanceof ErrnoError &&
    [ECONNRESET, EPIPE, ECONNABORTED, ETIMEDOUT].includes(error.errno);
}

/**
 * One client connection of an echo server: its non-blocking fd and the bytes
 * read from it that are not echoed yet (the output queue).
 */
export class EchoClient {
  /** The connection's descriptor (non-blocking). */
  readonly fd: number;
  /** The client has sent EOF: read nothing more; close once everything is echoed. */
  eof = false;
  /**
   * Edge-triggered bookkeeping: `true` until a read returned EAGAIN (the kernel
   * may still hold data). Set it again when an EPOLLIN edge arrives.
   */
  readReady = true;
  /** Edge-triggered bookkeeping: `true` until a send returned EAGAIN. Set again on EPOLLOUT. */
  writeReady = true;
  #queue: Uint8Array[] = [];
  #pending = 0;

  constructor(fd: number) {
    this.fd = fd;
  }

  /** Bytes waiting to be echoed. */
  get pendingBytes(): number {
    return this.#pending;
  }

  /** Should the server read from this client? Not after EOF, nor while far behind. */
  get wantsRead(): boolean {
    return !this.eof && this.#pending < HIGH_WATER_BYTES;
  }

  /** Is there something to send? */
  get wantsWrite(): boolean {
    return this.#pending > 0;
  }

  /** EOF seen and everything echoed: the server closes the connection now. */
  get done(): boolean {
    return this.eof && this.#pending === 0;
  }

  /**
   * One read(2) into `buffer`: `"data"` (queued for the echo), `"eof"`,
   * `"again"` (EAGAIN: nothing there now) or `"reset"` (the client is gone).
   */
  readOnce(buffer: Uint8Array): "data" | "eof" | "again" | "reset" {
    let n: number | null;
    try {
      n = read(this.fd, buffer);
    } catch (error) {
      if (isPeerGone(error)) return "reset";
      throw error;
    }
    if (n === null) return "again";
    if (n === 0) {
      this.eof = true;
      return "eof";
    }
    this.#queue.push(buffer.slice(0, n)); // a copy: the buffer is reused by the next read
    this.#pending += n;
    return "data";
  }

  /**
   * Sends queued bytes until the queue is empty (`"drained"`), the kernel's
   * buffer is full (`"blocked"`: send returned EAGAIN or took only part), or
   * the client is gone (`"reset"`).
   */
  flush(): "drained" | "blocked" | "reset" {
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      let n: number | null;
      try {
        n = send(this.fd, head);
      } catch (error) {
        if (isPeerGone(error)) return "reset";
        throw error;
      }
      if (n === null) return "blocked";
      this.#pending -= n;
      if (n === head.length) this.#queue.shift();
      else {
        this.#queue[0] = head.subarray(n); // a partial send: the rest goes first next time
        return "blocked";
      }
    }
    return "drained";
  }
}

/**
 * The self-pipe trick: a pipe whose read end the server watches with everything
 * else. `wake()` writes a byte, so a wait in progress returns at once — the way
 * to interrupt a poll or epoll_wait that runs on a worker thread.
 */
export class WakePipe {
  readonly readFd: number;
  readonly writeFd: number;
  readonly #scratch = new Uint8Array(64);
  static readonly #byte = new Uint8Array([1]);

  constructor() {
    [this.readFd, this.writeFd] = pipe({ nonBlocking: true });
  }

  /** Makes the read end readable (a full pipe already is: then nothing is written). */
  wake(): void {
    write(this.writeFd, WakePipe.#byte);
  }

  /** Empties the pipe after a wake-up, so the next wait does not return at once. */
  drain(): void {
    while ((read(this.readFd, this.#scratch) ?? 0) > 0) {
      // keep reading until EAGAIN
    }
  }
}

/** Closes `fd`, ignoring "not open" (it may be closed already). */
function closeQuietly(fd: number): void {
  sys.close(fd);
}

/** Lets the rest of the program run: the grader's clients share this thread. */
export function pause(ms: number): Promise<void> {
  // setImmediate runs after pending I/O callbacks, without a timer's minimum delay.
  return new Promise((resolve) => ms <= 0 ? setImmediate(resolve) : setTimeout(resolve, ms));
}

/**
 * What every echo server holds: the non-blocking listener, the wake-up pipe,
 * the read buffer, the clients by fd, and the counters. `server(loop)` turns
 * your running loop into the {@linkcode EchoServer} the grader talks to: its
 * `close()` sets `closing`, wakes the loop, waits for it to end, then closes
 * every descriptor that is left (clients still in `clients`, `extraFds`, the
 * listener, the pipe).
 */
export class EchoState {
  readonly kind: EchoKind;
  readonly listener: Listener;
  readonly wake: WakePipe;
  readonly buffer: Uint8Array;
  /** Live clients by fd. Remove a client when you close its fd. */
  readonly clients: Map<number, EchoClient> = new Map();
  /** Descriptors of the multiplexer itself (the epoll instance): closed at the end. */
  readonly extraFds: number[] = [];
  #watched: number[] = [];
  #waits = 0;
  /** Set by close(): your loop must end when it sees it. */
  closing = false;
  accepted = 0;
  refused = 0;
  #released = false;
  #acceptTimer: ReturnType<typeof setTimeout> | undefined;
  #pauseMs = 0;

  /**
   * Set this before every wait (every select, poll or epoll_wait call): the
   * fds the wait watches. The grader looks at it, and counts each setting as
   * one wait of your loop ({@linkcode EchoState.waits}).
   */
  get watched(): number[] {
    return this.#watched;
  }

  set watched(fds: number[]) {
    this.#watched = fds;
    this.#waits++;
  }

  /** How many times `watched` was set: the waits of the loop so far. */
  get waits(): number {
    return this.#waits;
  }

  constructor(kind: EchoKind, options: EchoOptions = {}) {
    this.kind = kind;
    this.listener = listenTcp({
      address: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
      nonBlocking: true,
    });
    try {
      // Accepted sockets inherit the listener's buffer sizes.
      if (options.sendBufferBytes !== undefined) {
        setSocketOption(this.listener.fd, SOL_SOCKET, SO_SNDBUF, options.sendBufferBytes);
      }
      this.wake = new WakePipe();
    } catch (error) {
      closeQuietly(this.listener.fd);
      throw error;
    }
    this.buffer = new Uint8Array(options.readBufferBytes ?? READ_BUFFER_BYTES);
  }

  /** Every descriptor still open. */
  openFds(): number[] {
    if (this.#released) return [];
    return [
      this.listener.fd,
      this.wake.readFd,
      this.wake.writeFd,
      ...this.extraFds,
      ...this.clients.keys(),
    ];
  }

  /**
   * Takes one queued connection (non-blocking fd), or `null` when none is
   * queued. Throws what accept4 throws: out of descriptors (EMFILE, ENFILE:
   * `isOutOfDescriptors(error)`), see {@linkcode EchoState.pauseAccepting}.
   */
  acceptOne(): number | null {
    const fd = accept(this.listener.fd, { nonBlocking: true });
    if (this.#pauseMs > 0) {
      this.#pauseMs = 0;
      log.info("{kind}: accepting again", { kind: this.kind });
    }
    if (fd !== null) {
      this.accepted++;
      log.info("{kind}: client connected on fd {fd}", { kind: this.kind, fd });
    }
    return fd;
  }

  /** True while accepting is paused: leave the listener out of your wait. */
  get acceptPaused(): boolean {
    return this.#acceptTimer !== undefined;
  }

  /**
   * Call it when {@linkcode EchoState.acceptOne} threw "out of descriptors"
   * (`isOutOfDescriptors(error)`): the client stays queued in the kernel, and
   * calling accept again at once fails again. It pauses accepting for 10 ms,
   * doubling (up to 1 s) while accept keeps failing, and logs one warning per
   * episode. When the pause ends it calls `resume` (if given), wakes your loop,
   * and `acceptPaused` is false again: put the listener back and accept.
   */
  pauseAccepting(error: unknown, resume?: () => void): void {
    if (this.#pauseMs === 0) {
      log.warn("{kind}: out of descriptors, accepting paused: {error}", {
        kind: this.kind,
        error: String(error), // its message: a stack trace needs descriptors to print
      });
    }
    this.#pauseMs = Math.min(this.#pauseMs === 0 ? 10 : this.#pauseMs * 2, 1000);
    clearTimeout(this.#acceptTimer);
    this.#acceptTimer = setTimeout(() => {
      this.#acceptTimer = undefined;
      if (this.#released) return;
      resume?.();
      this.wake.wake();
    }, this.#pauseMs);
  }

  /**
   * Closes a client's fd and forgets it (deletes it from `clients`), logging
   * the disconnect. With epoll, EPOLL_CTL_DEL it first.
   */
  closeClient(fd: number): void {
    this.clients.delete(fd);
    close(fd);
    log.info("{kind}: client on fd {fd} left, {live} live", {
      kind: this.kind,
      fd,
      live: this.clients.size,
    });
  }

  /** Closes every descriptor that is left. Safe to call twice. */
  releaseAll(): void {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#acceptTimer);
    this.#acceptTimer = undefined;
    for (const fd of this.clients.keys()) closeQuietly(fd);
    this.clients.clear();
    for (const fd of this.extraFds) closeQuietly(fd);
    for (const fd of [this.listener.fd, this.wake.readFd, this.wake.writeFd]) closeQuietly(fd);
    this.#watched = [];
  }

  /** The server object around your running loop. */
  server(loop: Promise<void>): EchoServer {
    const finished = loop.finally(() => this.releaseAll());
    finished.catch(() => {}); // looked at by close() and the grader, not an unhandled rejection
    return new RunningEchoServer(this, finished);
  }

  /** Sets `closing` and wakes the loop, unless that happened already. */
  requestClose(): void {
    if (this.closing) return;
    this.closing = true;
    if (!this.#released) this.wake.wake();
  }
}

/** The {@linkcode EchoServer} that {@linkcode EchoState.server} returns. */
class RunningEchoServer implements EchoServer {
  readonly #state: EchoState;
  readonly kind: EchoKind;
  readonly addr: { hostname: string; port: number };
  readonly finished: Promise<void>;

  constructor(state: EchoState, finished: Promise<void>) {
    this.#state = state;
    this.kind = state.kind;
    this.addr = { hostname: state.listener.address, port: state.listener.port };
    this.finished = finished;
  }

  openFds(): number[] {
    return this.#state.openFds();
  }

  clientFds(): number[] {
    return [...this.#state.clients.keys()];
  }

  watchedFds(): number[] {
    return [...this.#state.watched];
  }

  pendingOutputBytes(): number {
    let sum = 0;
    for (const client of this.#state.clients.values()) sum += client.pendingBytes;
    return sum;
  }

  get accepted(): number {
    return this.#state.accepted;
  }

  get refused(): number {
    return this.#state.refused;
  }

  get waits(): number {
    return this.#state.waits;
  }

  async close(): Promise<void> {
    this.#state.requestClose();
    await this.finished;
  }
}

// ---------------------------------------------------------------------------
// Your part: the servers
// ---------------------------------------------------------------------------

/**
 * One level-triggered turn for one client, after a wait said it is ready:
 * - `readable` and the client `wantsRead`: read ONCE (`client.readOnce(buffer)`).
 *   Level-triggered means the wait reports the fd again while data is left,
 *   so one read per turn is enough and fair to the other clients.
 * - then, if there is anything to send (`wantsWrite`), `client.flush()` at once:
 *   most of the time the kernel takes it all, and no extra turn is needed.
 *
 * Returns `false` when the server should drop the client: it reset (a read or
 * flush said `"reset"`), or it is `done` (EOF and everything echoed).
 */
export function serveReady(
  client: EchoClient,
  buffer: Uint8Array,
  readable: boolean,
  writable: boolean,
): boolean {
  throw new TodoError("serveReady");
}

/**
 * One edge-triggered turn for one client. An edge is reported ONCE, when data
 * arrives (or room frees up); data left unread gets no second report. So:
 * - on `readable` set `client.readReady = true`, on `writable` `client.writeReady = true`;
 * - read while `readReady && wantsRead`, until a read says `"again"` (EAGAIN)
 *   or `"eof"` (both: `readReady = false`);
 * - flush while `writeReady && wantsWrite`; `"blocked"` → `writeReady = false`;
 * - if reading stopped only because the client was too far behind
 *   (`!wantsRead` with `readReady` still true) and the flush made room, go
 *   back to reading: no new edge will come for the data already there.
 *
 * Returns `false` when the client must be dropped (reset, or done).
 */
export function serveEdge(
  client: EchoClient,
  buffer: Uint8Array,
  readable: boolean,
  writable: boolean,
): boolean {
  throw new TodoError("serveEdge");
}

/**
 * The echo server on `select(2)`.
 *
 * - `const state = new EchoState("select", options)`. If its listener or
 *   wake-up pipe got an fd >= FD_SETSIZE, close everything
 *   (`state.releaseAll()`) and throw a {@linkcode FdSetsizeError}.
 * - Loop until `state.closing`: build the read set (wake pipe, listener, every
 *   client that `wantsRead`) and the write set (clients that `wantsWrite`),
 *   store their fds in `state.watched`, then `select(readFds, writeFds, 0)`.
 *   select has no worker-thread binding, so never wait in it: look (timeout 0),
 *   then `await pause(...)`: `pause(0)` after a round with work, a growing
 *   pause (1, 2, 4 … up to {@linkcode SELECT_IDLE_MAX_MS} ms) while idle.
 * - Listener readable: accept until `state.acceptOne()` returns null. If it
 *   throws "out of descriptors" (`isOutOfDescriptors(error)`), call
 *   tell the state to pause accepting (`pauseAccepting`, with the error), and leave the listener out
 *   of the read set while `state.acceptPaused`. Any other error: rethrow. A new fd
 *   >= FD_SETSIZE cannot go into an fd_set (FD_SET past the bitmap corrupts
 *   memory in C; the bindings throw a RangeError): close it at once, count it
 *   in `state.refused`, log a warning, and keep serving everyone else.
 * - A ready client: `serveReady(...)`; when it returns false,
 *   `state.closeClient(fd)`: it closes the fd AND forgets it — a closed fd
 *   left in the sets makes the next select fail with EBADF.
 * - Return `state.server(loop)`.
 */
export function startSelectEchoServer(options: EchoOptions = {}): EchoServer {
  throw new TodoError("startSelectEchoServer");
}

/**
 * The echo server on `poll(2)`, waiting on a worker thread.
 *
 * - `new EchoState("poll", options)`.
 * - Loop until `state.closing`: build the pollfd list — wake pipe (POLLIN),
 *   listener (POLLIN), each client with POLLIN if it `wantsRead`, POLLOUT if
 *   it `wantsWrite` — set `state.watched`, then
 *   `const revents = await pollAsync(requests, -1)`: the wait runs on a
 *   worker thread and `close()` ends it through the wake-up pipe.
 * - `revents[i]` belongs to `requests[i]`. POLLHUP and POLLERR come without
 *   being asked for: treat them as "readable" (the read then says EOF or
 *   reset). POLLNVAL means a closed fd is still in your list: a bug — throw.
 * - Wake pipe: `drain()`. Listener: accept until `acceptOne()` is null.
 *   Out of descriptors: pause accepting through the state (as with select) and
 *   no listener in the list while `state.acceptPaused`.
 *   Clients: `serveReady`, and `state.closeClient(fd)` when it says false.
 * - Return `state.server(loop)`.
 */
export function startPollEchoServer(options: EchoOptions = {}): EchoServer {
  throw new TodoError("startPollEchoServer");
}

/**
 * The echo server on `epoll(7)`, waiting on a worker thread.
 *
 * - `new EchoState(options.edgeTriggered ? "epoll-et" : "epoll", options)`,
 *   `epollCreate()`, and push the epoll fd to `state.extraFds` (so it is closed
 *   at the end). Register the wake pipe (EPOLLIN) and the listener (EPOLLIN,
 *   plus EPOLLET when edge-triggered).
 * - Level-triggered: register each new client with EPOLLIN; after serving it,
 *   if the events it needs changed (EPOLLIN when it `wantsRead`, EPOLLOUT when
 *   it `wantsWrite`), EPOLL_CTL_MOD. Keep the registered mask per fd.
 * - Edge-triggered: register each new client once with
 *   EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET and never change it; serve it
 *   with `serveEdge`. The listener is edge-triggered too: accept until EAGAIN,
 *   or connections that queued up behind one edge wait forever.
 * - Loop: set `state.watched` (the interest list), then
 *   `await epollWaitAsync(epfd, 64, -1)`; EPOLLHUP/EPOLLERR/EPOLLRDHUP count as
 *   readable. Drop a client with EPOLL_CTL_DEL, then `state.closeClient(fd)`.
 * - Out of descriptors while accepting: EPOLL_CTL_DEL the listener and
 *   pause accepting through the state, giving it the error and a `resume` callback that adds it back (an fd
 *   added while ready is reported at once, edge-triggered or not); leave it
 *   out of `state.watched` while `state.acceptPaused`.
 * - If a call fails while it starts (epoll_create, epoll_ctl: EMFILE when
 *   descriptors run out), `state.releaseAll()` and rethrow.
 * - Return `state.server(loop)`.
 */
export function startEpollEchoServer(options: EpollEchoOptions = {}): EchoServer {
  throw new TodoError("startEpollEchoServer");
}

/** Starts the echo server of `kind`. */
export function startEchoServer(kind: EchoKind, options: EchoOptions = {}): EchoServer {
  switch (kind) {
    case "select":
      return startSelectEchoServer(options);
    case "poll":
      return startPollEchoServer(options);
    case "epoll":
      return startEpollEchoServer(options);
    case "epoll-et":
      return startEpollEchoServer({ ...options, edgeTriggered: true });
  }
}

// ---------------------------------------------------------------------------
// Your part: a small event loop (lesson 12 builds on the same design)
// ---------------------------------------------------------------------------

/** What a watcher wants to hear about. At least one must be true. */
export interface Interest {
  /** Call back when a read would not wait (data, EOF, a queued connection, an error). */
  readable?: boolean;
  /** Call back when a write would not wait. */
  writable?: boolean;
}

/** What the kernel reported for a watched descriptor, limited to what the watcher asked for. */
export interface Readiness {
  /** A read will not wait (data, EOF, or an error to collect). */
  readable: boolean;
  /** A write will not wait. */
  writable: boolean;
  /** EPOLLHUP: closed in both directions, or reset. */
  hangup: boolean;
  /** EPOLLERR: an error is pending. */
  error: boolean;
}

/** Called with the descriptor and what it is ready for. */
export type WatchCallback = (fd: number, ready: Readiness) => void;

/**
 * epoll's event bits as a {@linkcode Readiness}, keeping only what the mask
 * asked for (EPOLLHUP and EPOLLERR make an fd both readable and writable: the
 * next call on it returns at once, with EOF or the error). Given.
 */
export function readinessOf(events: number, mask: number): Readiness {
  const trouble = events & (EPOLLHUP | EPOLLERR);
  return {
    readable: (mask & EPOLLIN) !== 0 && ((events & EPOLLIN) !== 0 || trouble !== 0),
    writable: (mask & EPOLLOUT) !== 0 && ((events & EPOLLOUT) !== 0 || trouble !== 0),
    hangup: (events & EPOLLHUP) !== 0,
    error: (events & EPOLLERR) !== 0,
  };
}

interface Watcher {
  mask: number;
  callback: WatchCallback;
}

interface Timer {
  id: number;
  due: number;
  /** Tie-breaker: timers due at the same time fire in the order they were set. */
  seq: number;
  callback: () => void;
}

/**
 * A level-triggered epoll event loop with one-shot timers — the same design as
 * the workbook's `workbook/event-loop`, which lesson 12 runs on.
 *
 * It owns three descriptors: an epoll instance and a non-blocking wake-up pipe
 * whose read end is registered with EPOLLIN. Waits run on a worker thread
 * (`epollWaitAsync`); `stop()` and `setTimer()` write to the pipe while a wait
 * is in flight, so the wait returns and sees the change.
 */
export class EventLoop {
  #epfd = -1;
  #wakeRead = -1;
  #wakeWrite = -1;
  readonly #scratch = new Uint8Array(64);
  readonly #watchers = new Map<number, Watcher>();
  /** Sorted by due time, then by `seq`. */
  #timers: Timer[] = [];
  #nextTimerId = 1;
  #nextSeq = 0;
  /** The wait in flight, if any. */
  #waiting: Promise<unknown> | null = null;
  #running: Promise<void> | null = null;
  #stopping = false;
  #closed = false;

  /**
   * Creates the epoll instance and the wake-up pipe, and registers the pipe's
   * read end. If a step fails, closes what it opened, then rethrows.
   */
  constructor() {
    throw new TodoError("EventLoop");
  }

  /** The loop's own descriptors: `[epfd, wakeRead, wakeWrite]`, or `[]` once closed. */
  ownFds(): number[] {
    return this.#closed ? [] : [this.#epfd, this.#wakeRead, this.#wakeWrite];
  }

  /** Descriptors being watched. */
  watchedFds(): number[] {
    return [...this.#watchers.keys()];
  }

  /** How many timers wait to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /**
   * Watches `fd` (level-triggered): EPOLL_CTL_ADD the first time, EPOLL_CTL_MOD
   * when it is watched already (the new interest and callback replace the old).
   * Throws a RangeError when the interest asks for nothing, or when `fd` is
   * one of the loop's own.
   */
  watch(fd: number, interest: Interest, callback: WatchCallback): void {
    throw new TodoError("watch");
  }

  /**
   * Stops watching `fd` (EPOLL_CTL_DEL); returns whether it was watched. If the
   * fd was closed first, the kernel already dropped it: EBADF/ENOENT from the
   * DEL are fine then. After this, no callback for `fd` may run — not even for
   * an event already returned by the wait that is being dispatched.
   */
  unwatch(fd: number): boolean {
    throw new TodoError("unwatch");
  }

  /**
   * Runs `callback` once, `delayMs` from now (`performance.now()` clock;
   * negative counts as 0). Keep `#timers` sorted by due time, ties in the
   * order set. If a wait is in flight, wake it: it computed its timeout
   * without this timer. Returns the timer's id.
   */
  setTimer(delayMs: number, callback: () => void): number {
    throw new TodoError("setTimer");
  }

  /** Cancels a pending timer; returns whether it was pending. */
  clearTimer(id: number): boolean {
    throw new TodoError("clearTimer");
  }

  /**
   * One round:
   * 1. timeout = time until the first timer is due (0 if overdue), capped by
   *    `maxWaitMs`; -1 (forever) when there is neither;
   * 2. `this.#waiting = epollWaitAsync(epfd, 64, timeout)`, await it, then set
   *    `#waiting` back to null (in a finally);
   * 3. for each event: the wake pipe → drain it; an fd no longer in
   *    `#watchers` → skip it (unwatched by an earlier callback of this round);
   *    else `callback(fd, readinessOf(events, mask))` if readable or writable;
   * 4. fire every timer due by now (taken off the list before its callback
   *    runs; timers those callbacks set wait for the next round).
   * Resolves with how many callbacks ran. A throwing callback rejects it.
   * Throws if another round is still waiting (one wait at a time).
   */
  async runOnce(maxWaitMs = Infinity): Promise<number> {
    throw new TodoError("runOnce");
  }

  /**
   * Runs rounds until `stop()` is called or nothing is left to wait for (no
   * watched fd and no timer). Throws if already running; rejects if a callback
   * throws.
   */
  run(): Promise<void> {
    throw new TodoError("run");
  }

  /** Makes `run()` return after the current round, waking a wait in flight. */
  stop(): void {
    throw new TodoError("stop");
  }

  /**
   * Stops, waits for `run()` and for any wait in flight to return (a worker
   * thread must not be left inside epoll_wait), then closes the loop's three
   * descriptors and forgets watchers and timers. Watched fds stay open (they
   * are the caller's). Idempotent.
   */
  async close(): Promise<void> {
    throw new TodoError("close");
  }

  /** Writes one byte into the wake-up pipe if a wait is in flight. Given. */
  #wake(): void {
    if (this.#waiting && !this.#closed) write(this.#wakeWrite, new Uint8Array([1]));
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new Error(`${what}(): the event loop is closed`);
  }
}

// ---------------------------------------------------------------------------
// The program: deno task run 11 echo --mode epoll-et --port 9000
// ---------------------------------------------------------------------------

const KINDS: EchoKind[] = ["select", "poll", "epoll", "epoll-et"];

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["mode"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const kind = (args.extra.mode ?? "epoll") as EchoKind;
  if (!KINDS.includes(kind)) {
    console.error(`--mode must be one of ${KINDS.join(", ")}, got ${kind}`);
    Deno.exit(2);
  }
  const server = startEchoServer(kind, { hostname: args.host, port: args.port });
  log.info("{kind} echo server listening on {host}:{port}", {
    kind,
    host: server.addr.hostname,
    port: server.addr.port,
  });
  let lastAccepted = 0;
  const report = setInterval(() => {
    if (server.accepted === lastAccepted) return;
    lastAccepted = server.accepted;
    log.info("{accepted} connection(s) so far, {live} live, {refused} refused", {
      accepted: server.accepted,
      live: server.clientFds().length,
      refused: server.refused,
    });
  }, 1000);
  await Promise.race([untilInterrupted(), server.finished]);
  clearInterval(report);
  await server.close();
  log.info("stopped");
}

if (import.meta.main) await main();
