/**
 * A small event loop on Linux epoll: watch descriptors for "readable" and/or
 * "writable" (level-triggered) with one callback each, and set one-shot timers.
 *
 * This is the reference copy of the `EventLoop` that learners build in lesson 11
 * (`lessons/11-select-poll-epoll/multiplex.ts`): the same design and the same API.
 * Lesson 12's coroutine hub runs on this one (import it as `"workbook/event-loop"`),
 * so lesson 12 never depends on the learner's lesson-11 file.
 *
 * How it waits: {@linkcode EventLoop.runOnce} calls `epoll_wait` on an FFI worker
 * thread (`epollWaitAsync`), so the JavaScript thread stays free meanwhile for
 * timers, promises and Deno's own sockets. A worker-thread wait cannot be
 * cancelled, so the loop watches the read end of a pipe of its own (the
 * self-pipe trick): {@linkcode EventLoop.stop}, and a timer set while the loop
 * waits, write one byte into the pipe and the wait returns at once.
 *
 * ```
 *  watch(fd, {readable}, cb) ──► epoll interest list ◄── wake-up pipe (stop, new timers)
 *                                      │
 *  runOnce():  timeout = next timer due │ epoll_wait on a worker thread
 *                                      ▼
 *              for each ready fd: callback(fd, readiness)   (skip fds unwatched meanwhile)
 *              then every timer that is due, in due order
 * ```
 *
 * Needs `--allow-ffi` and Linux (see `ffiAvailable()` in `workbook/libc`).
 *
 * @example
 * ```ts ignore
 * import { EventLoop } from "workbook/event-loop";
 * import { close, read, socketPair, write } from "workbook/libc";
 *
 * const loop = new EventLoop();
 * const [left, right] = socketPair({ nonBlocking: true });
 * loop.watch(right, { readable: true }, (fd) => {
 *   const buffer = new Uint8Array(16);
 *   console.log("got", read(fd, buffer), "byte(s)");
 *   loop.unwatch(fd); // nothing left to watch: run() returns
 * });
 * loop.setTimer(5, () => write(left, new Uint8Array([1, 2, 3])));
 * await loop.run();
 * await loop.close();
 * close(left);
 * close(right);
 * ```
 *
 * @module
 */
import {
  close,
  EBADF,
  ENOENT,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  epollCreate,
  epollCtl,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  epollWaitAsync,
  ErrnoError,
  pipe,
  read,
  write,
} from "../ffi/libc.ts";

/** What a watcher wants to hear about. At least one must be true. */
export interface Interest {
  /** Call back when a read would not wait (data, EOF, a queued connection, an error). */
  readable?: boolean;
  /** Call back when a write would not wait. */
  writable?: boolean;
}

/** What the kernel reported for a watched descriptor, limited to what the watcher asked for. */
export interface Readiness {
  /** A read will not wait (it may return data, 0 for EOF, or fail with the pending error). */
  readable: boolean;
  /** A write will not wait. */
  writable: boolean;
  /** EPOLLHUP: the connection is closed in both directions (or was reset). */
  hangup: boolean;
  /** EPOLLERR: an error is pending on the socket. */
  error: boolean;
}

/** Called with the descriptor and what it is ready for. */
export type WatchCallback = (fd: number, ready: Readiness) => void;

/** Most events one `epoll_wait` returns; more ready fds simply wait for the next round. */
export const MAX_EVENTS = 64;

interface Watcher {
  mask: number;
  callback: WatchCallback;
}

interface Timer {
  id: number;
  due: number;
  /** Tie-breaker: timers due at the same moment fire in the order they were set. */
  seq: number;
  callback: () => void;
}

const WAKE_BYTE = new Uint8Array([1]);

/** Translates epoll's event bits into a {@linkcode Readiness}, keeping only what was asked for. */
export function readinessOf(events: number, mask: number): Readiness {
  const trouble = events & (EPOLLHUP | EPOLLERR);
  return {
    readable: (mask & EPOLLIN) !== 0 && ((events & EPOLLIN) !== 0 || trouble !== 0),
    writable: (mask & EPOLLOUT) !== 0 && ((events & EPOLLOUT) !== 0 || trouble !== 0),
    hangup: (events & EPOLLHUP) !== 0,
    error: (events & EPOLLERR) !== 0,
  };
}

/**
 * An epoll event loop with timers. One instance owns three descriptors (its
 * epoll instance and its wake-up pipe) until {@linkcode EventLoop.close}.
 *
 * @example
 * ```ts ignore
 * import { EventLoop } from "workbook/event-loop";
 *
 * const loop = new EventLoop();
 * const order: number[] = [];
 * loop.setTimer(20, () => order.push(20));
 * loop.setTimer(10, () => order.push(10));
 * await loop.run(); // returns once nothing is watched and no timer is left
 * console.log(order); // [10, 20]
 * await loop.close();
 * ```
 */
export class EventLoop {
  readonly #epfd: number;
  readonly #wakeRead: number;
  readonly #wakeWrite: number;
  readonly #wakeScratch = new Uint8Array(64);
  readonly #watchers = new Map<number, Watcher>();
  /** Sorted by due time, then by the order they were set. */
  #timers: Timer[] = [];
  #nextTimerId = 1;
  #nextSeq = 0;
  /** The wait in flight, if any: a worker thread is inside epoll_wait. */
  #waiting: Promise<unknown> | null = null;
  #running: Promise<void> | null = null;
  #stopping = false;
  #closed = false;

  /** Creates the epoll instance and the wake-up pipe. */
  constructor() {
    this.#epfd = epollCreate();
    try {
      [this.#wakeRead, this.#wakeWrite] = pipe({ nonBlocking: true });
    } catch (error) {
      close(this.#epfd);
      throw error;
    }
    epollCtl(this.#epfd, EPOLL_CTL_ADD, this.#wakeRead, EPOLLIN);
  }

  /** The loop's own descriptors: its epoll instance and the two ends of its wake-up pipe. */
  ownFds(): number[] {
    return this.#closed ? [] : [this.#epfd, this.#wakeRead, this.#wakeWrite];
  }

  /** Descriptors being watched, in the order they were first watched. */
  watchedFds(): number[] {
    return [...this.#watchers.keys()];
  }

  /** Whether `fd` is being watched. */
  isWatching(fd: number): boolean {
    return this.#watchers.has(fd);
  }

  /** How many timers are waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /**
   * Watches `fd` (level-triggered): while it stays ready, `callback` runs once
   * per round. Watching an fd again replaces its interest and callback.
   */
  watch(fd: number, interest: Interest, callback: WatchCallback): void {
    this.#checkOpen("watch");
    if (this.ownFds().includes(fd)) {
      throw new RangeError(`fd ${fd} belongs to the event loop itself`);
    }
    const mask = (interest.readable ? EPOLLIN : 0) | (interest.writable ? EPOLLOUT : 0);
    if (mask === 0) {
      throw new RangeError("watch() needs readable and/or writable (use unwatch() to stop)");
    }
    const op = this.#watchers.has(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    epollCtl(this.#epfd, op, fd, mask);
    this.#watchers.set(fd, { mask, callback });
  }

  /**
   * Stops watching `fd`; returns whether it was watched. Call it before you
   * close the fd. (If the fd was closed first, the kernel has already dropped
   * it from the interest list: the loop still forgets it, without an error.)
   */
  unwatch(fd: number): boolean {
    if (!this.#watchers.delete(fd)) return false;
    if (this.#closed) return true;
    try {
      epollCtl(this.#epfd, EPOLL_CTL_DEL, fd);
    } catch (error) {
      const gone = error instanceof ErrnoError && (error.errno === EBADF || error.errno === ENOENT);
      if (!gone) throw error;
    }
    return true;
  }

  /** Runs `callback` once, `delayMs` from now. Returns an id for {@linkcode EventLoop.clearTimer}. */
  setTimer(delayMs: number, callback: () => void): number {
    this.#checkOpen("setTimer");
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const timer = {
      id: this.#nextTimerId++,
      due: performance.now() + delay,
      seq: this.#nextSeq++,
      callback,
    };
    // Insert after every timer due at the same time or earlier: ties keep their order.
    let at = this.#timers.length;
    while (at > 0 && this.#timers[at - 1].due > timer.due) at--;
    this.#timers.splice(at, 0, timer);
    // A wait already in flight computed its timeout without this timer.
    this.#wake();
    return timer.id;
  }

  /** Cancels a timer that has not fired; returns whether it was pending. */
  clearTimer(id: number): boolean {
    const at = this.#timers.findIndex((timer) => timer.id === id);
    if (at < 0) return false;
    this.#timers.splice(at, 1);
    return true;
  }

  /**
   * One round: waits (on a worker thread) until a watched fd is ready, the next
   * timer is due, or `maxWaitMs` passes; then runs the callbacks of the ready
   * fds and of every due timer. Resolves with how many callbacks ran. A
   * callback that throws rejects this round with its error.
   */
  async runOnce(maxWaitMs = Infinity): Promise<number> {
    this.#checkOpen("runOnce");
    if (this.#waiting) {
      throw new Error("runOnce(): the loop is already waiting (one wait at a time)");
    }
    let timeout = Math.max(0, maxWaitMs);
    if (this.#timers.length > 0) {
      timeout = Math.min(timeout, Math.max(0, Math.ceil(this.#timers[0].due - performance.now())));
    }
    const waiting = epollWaitAsync(this.#epfd, MAX_EVENTS, timeout === Infinity ? -1 : timeout);
    this.#waiting = waiting;
    let events;
    try {
      events = await waiting;
    } finally {
      this.#waiting = null;
    }
    let calls = 0;
    for (const { fd, events: bits } of events) {
      if (fd === this.#wakeRead) {
        this.#drainWake();
        continue;
      }
      // An earlier callback of this round may have unwatched (and closed) this fd.
      const watcher = this.#watchers.get(fd);
      if (!watcher) continue;
      const ready = readinessOf(bits, watcher.mask);
      if (!ready.readable && !ready.writable) continue;
      calls++;
      watcher.callback(fd, ready);
    }
    return calls + this.#fireDueTimers();
  }

  /**
   * Runs rounds until {@linkcode EventLoop.stop} is called or nothing is left to
   * wait for (no watched fd, no timer). Rejects if a callback throws.
   */
  run(): Promise<void> {
    this.#checkOpen("run");
    if (this.#running) throw new Error("run(): the loop is already running");
    this.#stopping = false;
    const running = (async () => {
      try {
        while (!this.#stopping && (this.#watchers.size > 0 || this.#timers.length > 0)) {
          await this.runOnce();
        }
      } finally {
        this.#running = null;
      }
    })();
    this.#running = running;
    return running;
  }

  /** Makes {@linkcode EventLoop.run} return after the current round; wakes a waiting loop. */
  stop(): void {
    this.#stopping = true;
    this.#wake();
  }

  /**
   * Stops the loop, waits for the wait in flight to return, then closes the
   * loop's own descriptors. Watched fds are the caller's: they stay open.
   * Calling it twice is harmless.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.stop();
    await this.#running?.catch(() => {});
    await this.#waiting?.catch(() => {});
    if (this.#closed) return;
    this.#closed = true;
    this.#watchers.clear();
    this.#timers = [];
    for (const fd of [this.#epfd, this.#wakeRead, this.#wakeWrite]) close(fd);
  }

  #fireDueTimers(): number {
    // Timers set by these callbacks are due later than `now`: they wait for the next round.
    const now = performance.now();
    let fired = 0;
    while (this.#timers.length > 0 && this.#timers[0].due <= now) {
      const timer = this.#timers.shift()!;
      fired++;
      timer.callback();
    }
    return fired;
  }

  #wake(): void {
    // Only a wait in flight needs waking; the next round sees the change anyway.
    if (this.#waiting && !this.#closed) write(this.#wakeWrite, WAKE_BYTE); // null: already full
  }

  #drainWake(): void {
    while ((read(this.#wakeRead, this.#wakeScratch) ?? 0) > 0) {
      // Empty the pipe: one round per wake-up is enough.
    }
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new Error(`${what}(): the event loop is closed`);
  }
}
