/**
 * Lesson 12 — coroutines from the ground up.
 *
 * Three steps, each on the one before:
 * 1. Greenlets: generators as coroutines that hand control to each other by
 *    name (`yield switchTo(other, value)`), run by a small trampoline.
 * 2. A round-robin scheduler: `spawn`, `yield` (let the others run),
 *    `yield sleep(ms)`, `yield join(task)`, on an injectable clock.
 * 3. A tiny gevent: a scheduler on lesson 11's event loop (the workbook's
 *    copy, "workbook/event-loop"), where a coroutine yields "wait until this
 *    fd is readable/writable"; green versions of accept/read/write that look
 *    blocking; and an echo server with one coroutine per connection, all on
 *    one thread.
 *
 * Read docs/12-coroutines.md first; `deno task lesson 12` grades this file.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { EventLoop } from "workbook/event-loop";
import {
  accept,
  ECONNABORTED,
  ECONNRESET,
  EMFILE,
  ENFILE,
  EPIPE,
  ErrnoError,
  ETIMEDOUT,
  listenTcp,
  read,
  send,
  sys,
} from "workbook/libc";

const log = programLogger("green");

// ---------------------------------------------------------------------------
// 1. Greenlets: explicit switching
// ---------------------------------------------------------------------------

/** What a greenlet's body yields: "switch to `target`, handing it `value`". */
export interface SwitchRequest {
  readonly target: Greenlet;
  readonly value: unknown;
}

/**
 * The body of a greenlet: a generator function. Its argument is the value of
 * the first switch into it; every `yield switchTo(g, v)` evaluates to the
 * value of the next switch back into it; what it returns goes to its parent.
 */
export type GreenletBody = (first: unknown) => Generator<SwitchRequest, unknown, unknown>;

/** `const reply = yield switchTo(other, value)`: hand control (and `value`) to `other`. */
export function switchTo(target: Greenlet, value?: unknown): SwitchRequest {
  return { target, value };
}

/** Where a greenlet is in its life. */
export type GreenletState = "new" | "suspended" | "running" | "dead";

let trampolineActive = false;

/**
 * A coroutine with explicit switching, in the manner of Python's greenlet:
 * no scheduler decides who runs next; each greenlet names the one it hands
 * control to. The special {@linkcode MAIN} greenlet stands for the plain code
 * that called {@linkcode Greenlet.switch}.
 */
export class Greenlet {
  /** For logs and errors. */
  readonly name: string;
  /** Who gets control (and the return value, or the error) when this one finishes; MAIN by default. */
  readonly parent: Greenlet | null;
  /** Set by switch(): "new" → "running" ⇄ "suspended" → "dead". */
  state: GreenletState = "new";
  /** The running generator, once started. */
  generator: Generator<SwitchRequest, unknown, unknown> | null = null;
  readonly #body: GreenletBody | null;

  constructor(body: GreenletBody | null, options: { name?: string; parent?: Greenlet } = {}) {
    this.#body = body;
    this.name = options.name ?? "greenlet";
    this.parent = body === null ? null : options.parent ?? MAIN;
  }

  /** Starts the body with its first value (given; switch() uses it). */
  start(first: unknown): Generator<SwitchRequest, unknown, unknown> {
    if (this.#body === null) throw new Error("MAIN has no body to start");
    this.generator = this.#body(first);
    return this.generator;
  }

  /** True once the body has returned or thrown. */
  get dead(): boolean {
    return this.state === "dead";
  }

  /**
   * Switches from plain code into this greenlet, handing it `value`, and runs
   * greenlets until control comes back to {@linkcode MAIN}; returns what came
   * back, or throws the error that came back. Given: it calls
   * {@linkcode trampoline}, which you write.
   */
  switch(value?: unknown): unknown {
    if (trampolineActive) {
      throw new Error(
        `${this.name}.switch() was called from inside a greenlet: yield switchTo(${this.name}, ` +
          `value) instead (a generator cannot resume another from within itself)`,
      );
    }
    trampolineActive = true;
    try {
      return trampoline(this, { ok: true, value });
    } finally {
      trampolineActive = false;
    }
  }
}

/** What a switch hands over: a value, or an error to throw at the receiver's `yield`. */
export type Handover = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The loop that runs greenlets, starting with `target` receiving `handover`,
 * until control reaches {@linkcode MAIN}:
 *
 * - `current` is the greenlet to run, `handover` what it gets.
 * - `current` is MAIN: return the value (or throw the error).
 * - `current` is dead: the switch goes to its parent instead (and on up:
 *   MAIN never dies). `parent` null means MAIN.
 * - A "new" greenlet: `current.start(value).next()`; a suspended one:
 *   `.next(value)`, or `.throw(error)` when an error is handed over. (An error
 *   handed to a greenlet that never started: it is dead at once, and the error
 *   goes on to its parent.) Mark it "running" meanwhile.
 * - It yielded a {@linkcode SwitchRequest}: it is "suspended"; go on with the
 *   request's target and value. It yielded anything else: throw a TypeError
 *   back into it.
 * - It returned: it is "dead"; its parent gets the return value.
 * - It threw: it is "dead"; its parent gets the error (thrown at the
 *   parent's `yield`, or out of `switch()` when the parent is MAIN).
 */
export function trampoline(target: Greenlet, handover: Handover): unknown {
  throw new TodoError("trampoline");
}

/** The plain code that calls `switch()`: switching to it returns from that call. Never dies. */
export const MAIN: Greenlet = new Greenlet(null, { name: "MAIN" });

// ---------------------------------------------------------------------------
// 2. A round-robin scheduler
// ---------------------------------------------------------------------------

/** What a scheduled coroutine may yield (besides nothing: "let the others run"). */
export type Instruction =
  | { readonly kind: "sleep"; readonly ms: number }
  | { readonly kind: "join"; readonly task: Task }
  | { readonly kind: "readable"; readonly fd: number }
  | { readonly kind: "writable"; readonly fd: number };

/**
 * A coroutine: a generator that yields instructions (or nothing, to let the
 * others run) and returns its result.
 */
export type Coroutine<T = unknown> = Generator<Instruction | undefined, T, unknown>;

/** `yield sleep(ms)`: wake me `ms` from now (on the scheduler's clock). */
export function sleep(ms: number): Instruction {
  return { kind: "sleep", ms };
}

/** `const result = yield join(task)`: wait until `task` ends; rethrows its error. */
export function join(task: Task): Instruction {
  return { kind: "join", task };
}

/** `yield readable(fd)`: wake me when `fd` is readable (needs a {@linkcode Hub}). */
export function readable(fd: number): Instruction {
  return { kind: "readable", fd };
}

/** `yield writable(fd)`: wake me when `fd` is writable (needs a {@linkcode Hub}). */
export function writable(fd: number): Instruction {
  return { kind: "writable", fd };
}

/** Time for a scheduler: real (`systemClock`) or a test's virtual one. */
export interface Clock {
  /** Milliseconds on the clock's scale. */
  now(): number;
  /** Resolves `ms` later on this clock (a virtual clock just moves forward). */
  sleep(ms: number): Promise<void>;
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** The error {@linkcode Scheduler.kill} throws into a coroutine. */
export class TaskKilled extends Error {
  override name = "TaskKilled";
}

/** Where a task is. */
export type TaskState =
  | "ready"
  | "running"
  | "sleeping"
  | "joining"
  | "waiting"
  | "done"
  | "failed";

/** What a task gets when it next runs: a value, or an error thrown at its `yield`. */
export type Resume = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A spawned coroutine and its bookkeeping. Given: the scheduler fills it in. */
export class Task<T = unknown> {
  readonly id: number;
  readonly name: string;
  readonly coroutine: Coroutine<T>;
  state: TaskState = "ready";
  /** The return value, once `done`. */
  result: T | undefined = undefined;
  /** The error it threw, once `failed`. */
  error: unknown = undefined;
  /** What the next resume hands in. */
  resume: Resume = { ok: true, value: undefined };
  /** Tasks waiting in `join` for this one. */
  readonly joiners: Task[] = [];
  /** When sleeping: the clock time to wake at. */
  wakeAt = 0;
  /** When sleeping: order of falling asleep, to break ties between equal `wakeAt`. */
  sleepSeq = 0;
  /** Resolves (never rejects) when the task is done or failed: for plain code to await. */
  readonly settled: Promise<void>;
  #settle!: () => void;

  constructor(id: number, name: string, coroutine: Coroutine<T>) {
    this.id = id;
    this.name = name;
    this.coroutine = coroutine;
    this.settled = new Promise((resolve) => this.#settle = resolve);
  }

  /** Not done and not failed. */
  get alive(): boolean {
    return this.state !== "done" && this.state !== "failed";
  }

  /** Marks the end (given): state, result or error, and resolves `settled`. */
  end(state: "done" | "failed", result: T | undefined, error: unknown): void {
    this.state = state;
    this.result = result;
    this.error = error;
    this.#settle();
  }
}

/**
 * A cooperative round-robin scheduler: coroutines run one at a time, each
 * until its next `yield`; nobody is interrupted.
 *
 * `run()` repeats rounds: every task that is ready runs once, in the order it
 * became ready (a bare `yield` puts it at the back). When no task is ready it
 * waits on the clock for the first sleeper (or, in a {@linkcode Hub}, for a
 * descriptor). It returns when no task can ever run again.
 */
export class Scheduler {
  readonly clock: Clock;
  /** Ready to run, in order. */
  protected readonly ready: Task[] = [];
  /** Sleeping, sorted by `wakeAt`, ties by `sleepSeq`. */
  protected readonly sleepers: Task[] = [];
  /** Every task not yet ended. */
  protected readonly alive: Set<Task> = new Set();
  #nextId = 1;
  #nextSleepSeq = 0;
  #running: Promise<void> | null = null;
  #wakeIdle: (() => void) | null = null;

  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** Tasks not yet ended. */
  get tasks(): Task[] {
    return [...this.alive];
  }

  /**
   * Creates a task for `body()` and puts it at the back of the ready queue.
   * It runs when the scheduler gets to it (call it before or during `run()`).
   * If the scheduler is idle, wake it (`this.wakeIdle()`).
   */
  spawn<T>(body: () => Coroutine<T>, name?: string): Task<T> {
    throw new TodoError("spawn");
  }

  /**
   * Makes `task` ready with `resume` (given): the hub and `kill` use it.
   */
  protected makeReady(task: Task, resume: Resume): void {
    task.resume = resume;
    task.state = "ready";
    this.ready.push(task);
  }

  /**
   * Puts `task` to sleep until `clock.now() + ms`: set `wakeAt` and `sleepSeq`
   * (a counter), state "sleeping", and insert it into `sleepers` keeping them
   * sorted by wake time — NOT by when they fell asleep: the one that sleeps
   * 10 ms wakes before the one that sleeps 30 ms, whoever asked first. Equal
   * wake times keep the order they fell asleep in.
   */
  protected addSleeper(task: Task, ms: number): void {
    throw new TodoError("addSleeper");
  }

  /** Moves every sleeper whose `wakeAt` has come (by the clock) to the ready queue, in order. */
  protected wakeSleepers(): void {
    throw new TodoError("wakeSleepers");
  }

  /**
   * Runs `task` until its next `yield`, then does what it asked. This is the
   * heart of the scheduler:
   *
   * - Resume the generator with `task.resume`: `.next(value)` or
   *   `.throw(error)` (state "running" meanwhile).
   * - It threw: the task failed — `finish(task, "failed", undefined, error)`.
   *   The scheduler must go on: one task's error is not everyone's.
   * - It returned: `finish(task, "done", value)`.
   * - It yielded nothing: back to the end of the ready queue (round-robin).
   * - `sleep(ms)`: `addSleeper(task, ms)`.
   * - `join(other)`: if `other` has ended, ready at once with its result (or
   *   its error); if `other` is the task itself, ready with an Error (it would
   *   wait forever); else state "joining" and into `other.joiners`.
   * - `readable`/`writable`: `this.waitIo(task, instruction)` (a Hub's job).
   * - Anything else: ready with a TypeError, thrown at its `yield`.
   */
  protected step(task: Task): void {
    throw new TodoError("step");
  }

  /**
   * Ends `task`: `task.end(state, result, error)`, remove it from `alive`, and
   * make every joiner ready — with the result, or with the error so that their
   * `yield join(task)` throws it.
   */
  protected finish(task: Task, state: "done" | "failed", result?: unknown, error?: unknown): void {
    throw new TodoError("finish");
  }

  /**
   * Runs until no task can run again (see {@linkcode Scheduler.runRounds}).
   * Throws if already running. Given.
   */
  run(): Promise<void> {
    if (this.#running) throw new Error("run(): the scheduler is already running");
    const running = this.runRounds().finally(() => this.#running = null);
    this.#running = running;
    return running;
  }

  /**
   * The scheduling loop behind `run()`:
   *
   * ```
   * loop:
   *   wake the sleepers that are due
   *   run one round: each task that is ready now, once (tasks made ready
   *     during the round wait for the next one)
   *   if tasks are still ready: await this.poll(); next round
   *   else if sleepers or I/O waiters (this.ioWaiters): await this.idle(ms
   *     until the first sleeper wakes, or Infinity); next round
   *   else: return (what is left is joining forever, or nothing)
   * ```
   */
  protected async runRounds(): Promise<void> {
    throw new TodoError("runRounds");
  }

  /** Resolves when the current `run()` has returned (at once if none runs). */
  async stopped(): Promise<void> {
    await this.#running?.catch(() => {});
  }

  /**
   * Ends a task from outside: throws a {@linkcode TaskKilled} (or `reason`)
   * into it at its `yield`, so its `finally` blocks run. Take it out of
   * whatever it waits in first: the sleepers, the joiners of another task,
   * or an I/O wait (`this.cancelIo(task)`), or the ready queue. Then make it
   * ready with the error and wake the scheduler (`this.wakeIdle()`). A task
   * that has ended is left alone; a task killing itself is an Error.
   */
  kill(task: Task, reason: unknown = new TaskKilled(`${task.name} was killed`)): void {
    throw new TodoError("kill");
  }

  // Hooks: the plain scheduler has a clock only; a Hub adds descriptors.

  /** How many tasks wait for a descriptor (0 here). */
  protected get ioWaiters(): number {
    return 0;
  }

  /** A task asked for `readable`/`writable`: the plain scheduler cannot do that. */
  protected waitIo(task: Task, instruction: Instruction): void {
    this.makeReady(task, {
      ok: false,
      error: new Error(`${instruction.kind}(fd) needs a Hub (a scheduler on an event loop)`),
    });
  }

  /** Stops an I/O wait (for kill). Nothing to do here. */
  protected cancelIo(_task: Task): void {}

  /** Between rounds while tasks are ready: nothing to look at here. */
  protected poll(): Promise<void> | void {}

  /** Nothing is ready: wait for the clock, or for `wakeIdle()`. */
  protected async idle(ms: number): Promise<void> {
    const woken = new Promise<void>((resolve) => this.#wakeIdle = resolve);
    const sleeping = ms === Infinity ? null : this.clock.sleep(ms);
    try {
      await Promise.race(sleeping ? [sleeping, woken] : [woken]);
    } finally {
      this.#wakeIdle = null;
    }
  }

  /** Wakes an idle `run()` (spawn and kill call it). */
  protected wakeIdle(): void {
    this.#wakeIdle?.();
  }
}

// ---------------------------------------------------------------------------
// 3. A tiny gevent: the scheduler on an event loop
// ---------------------------------------------------------------------------

/**
 * A scheduler whose coroutines can wait for descriptors: the "hub" of gevent.
 * It owns an {@linkcode EventLoop} (lesson 11's design, from
 * "workbook/event-loop") and runs on the real clock.
 */
export class Hub extends Scheduler {
  readonly loop: EventLoop = new EventLoop();
  /** fd → the task waiting on it (one waiter per descriptor). */
  protected readonly waiting: Map<number, Task> = new Map();
  /** task → the fd it waits on. */
  protected readonly waitingOn: Map<Task, number> = new Map();
  #idling = false;
  #woken = false;

  constructor() {
    super({ clock: systemClock });
  }

  protected override get ioWaiters(): number {
    return this.waiting.size;
  }

  /**
   * `yield readable(fd)` / `yield writable(fd)`: state "waiting"; watch the
   * fd on the loop with that interest; when the callback fires, unwatch it,
   * forget the wait and make the task ready. One waiter per fd: if another
   * task already waits on it, make this one ready with an Error instead.
   * Whenever a wait ends (woken, refused by a watch that throws, cancelled),
   * forget it in both maps: a stale entry keeps an ended task alive.
   */
  protected override waitIo(task: Task, instruction: Instruction): void {
    throw new TodoError("waitIo");
  }

  /** Stops a task's I/O wait (for kill): unwatch its fd and forget the wait. */
  protected override cancelIo(task: Task): void {
    throw new TodoError("cancelIo");
  }

  /** Tasks are still ready: look at the descriptors without waiting. Given. */
  protected override async poll(): Promise<void> {
    await this.loop.runOnce(0);
  }

  /**
   * Nothing is ready: wait on the event loop until a descriptor is ready or
   * `ms` passes (the first sleeper's wake time). Given.
   */
  protected override async idle(ms: number): Promise<void> {
    this.#idling = true;
    this.#woken = false;
    try {
      await this.loop.runOnce(ms);
    } finally {
      this.#idling = false;
    }
  }

  /** Wakes the loop's wait in flight: a timer due now does it (setTimer wakes the loop). Given. */
  protected override wakeIdle(): void {
    if (!this.#idling || this.#woken) return;
    this.#woken = true;
    this.loop.setTimer(0, () => {});
  }

  /** Kills every task, waits for `run()` to return, then closes the event loop. */
  async close(): Promise<void> {
    for (const task of this.tasks) this.kill(task);
    await this.stopped();
    await this.loop.close();
  }
}

/** Errors that mean "the peer is gone", not "the program is broken". */
export function isPeerGone(error: unknown): boolean {
  return error instanceof ErrnoError &&
    [ECONNRESET, EPIPE, ECONNABORTED, ETIMEDOUT].includes(error.errno);
}

/**
 * Errors that mean "this process (EMFILE) or the whole system (ENFILE) is out
 * of file descriptors": `accept` cannot take the next connection now, but it
 * stays queued in the kernel and can be taken once a descriptor is free.
 */
export function isOutOfDescriptors(error: unknown): boolean {
  return error instanceof ErrnoError && (error.errno === EMFILE || error.errno === ENFILE);
}

/** The acceptor's first pause when out of descriptors, in ms; each further failure doubles it. */
export const ACCEPT_PAUSE_MS = 10;

/** The acceptor's longest pause when out of descriptors, in ms. */
export const ACCEPT_PAUSE_MAX_MS = 1000;

/**
 * The green `accept`: looks blocking to its coroutine, yields to the others
 * while nothing is queued. `listenFd` is non-blocking: `accept(listenFd,
 * { nonBlocking: true })` returns `null` for EAGAIN — then `yield
 * readable(listenFd)` and try again. Returns the new (non-blocking) fd.
 *
 * Use it as `const fd = yield* greenAccept(listenFd)`.
 */
export function* greenAccept(listenFd: number): Coroutine<number> {
  throw new TodoError("greenAccept");
}

/**
 * The green `read`: bytes read into `buffer`, 0 at EOF; while nothing is
 * there (`read` returns null), `yield readable(fd)`. Errors (ECONNRESET …)
 * are thrown as they are.
 */
export function* greenRead(fd: number, buffer: Uint8Array): Coroutine<number> {
  throw new TodoError("greenRead");
}

/**
 * The green `sendall`: sends every byte of `bytes`, however many sends it
 * takes; when the socket is full (`send` returns null), `yield writable(fd)`.
 */
export function* greenWriteAll(fd: number, bytes: Uint8Array): Coroutine<void> {
  throw new TodoError("greenWriteAll");
}

/** A running green echo server. */
export interface GreenEchoServer {
  /** Where it listens. */
  readonly addr: { hostname: string; port: number };
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connection coroutines alive right now. */
  readonly live: number;
  /** The most connection coroutines alive at the same time. */
  readonly peakLive: number;
  /** Every descriptor the server holds open: the listener and each connection. */
  openFds(): number[];
  /**
   * Kills the acceptor and every connection coroutine (their `finally`
   * blocks close the descriptors) and resolves when all have ended.
   */
  close(): Promise<void>;
}

/**
 * An echo server on `hub`: one coroutine accepts (`greenAccept`) and spawns
 * one coroutine per connection; that one echoes with `greenRead` and
 * `greenWriteAll` until EOF (read returns 0), then closes its fd. A client
 * that resets ends its coroutine quietly (see {@linkcode isPeerGone}); any
 * other error fails that task only.
 *
 * - Listen with `listenTcp`, non-blocking, on `options.hostname` (default
 *   127.0.0.1) and `options.port` (default 0).
 * - Close every fd in a `finally` (the listener in the acceptor's), and keep
 *   `openFds()`, `live` and `peakLive` true to what is open.
 * - `close()`: `hub.kill(...)` the acceptor and every connection task, then
 *   await their `settled` promises. A task killed before it ever ran never
 *   entered its `try`, so its `finally` did not run: close what is left open.
 * - Log connects and disconnects (`log.info`).
 * - Out of descriptors (accept throws what {@linkcode isOutOfDescriptors}
 *   accepts: EMFILE, ENFILE): the client stays queued, so accepting again at
 *   once would spin. Pause the acceptor with `yield sleep(ms)`:
 *   {@linkcode ACCEPT_PAUSE_MS} first, doubling on each further failure up to
 *   {@linkcode ACCEPT_PAUSE_MAX_MS}; `log.warn` once when the episode starts,
 *   not per failure. Once an accept succeeds, the next episode starts again
 *   from the first pause. Any other accept error ends the acceptor.
 */
export function startGreenEchoServer(
  hub: Hub,
  options: { hostname?: string; port?: number } = {},
): GreenEchoServer {
  throw new TodoError("startGreenEchoServer");
}

/** The program: `deno task run 12 echo --port 9000`, then `nc 127.0.0.1 9000`. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  const hub = new Hub();
  const server = startGreenEchoServer(hub, { hostname: args.host, port: args.port });
  log.info("green echo server listening on {host}:{port}", {
    host: server.addr.hostname,
    port: server.addr.port,
  });
  const running = hub.run();
  await Promise.race([untilInterrupted(), running]);
  await server.close();
  await hub.close();
  log.info("stopped after {accepted} connection(s), at most {peak} at once", {
    accepted: server.accepted,
    peak: server.peakLive,
  });
}

if (import.meta.main) await main();
