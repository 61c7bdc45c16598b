/**
 * A gate between a listener and the code that accepts from it, so a suite can
 * place a connection at an exact moment of a server's life instead of hoping
 * for a timing: hold a connection that the kernel has handed over until the
 * server is closing, or keep the server from calling the kernel's `accept()`
 * while clients queue (and reset) in the backlog. It also counts the server's
 * `accept()` calls, so a suite can tell an idle loop from a spinning one by
 * counting, not by a clock. And it can make the next `accept()` calls fail the
 * way the kernel's does when the process is out of file descriptors (EMFILE),
 * so a suite can grade the back-off of an accept loop without lowering the
 * process's limit ({@linkcode ListenerGate.failNext}).
 *
 * A server built on `Deno.listen` is gated with {@linkcode gateListen}, which
 * swaps `Deno.listen` for the synchronous run of the start function; code that
 * takes a listener is given {@linkcode gateListener}'s.
 *
 * @module
 */
import { nextTurn, waitUntil } from "./wait.ts";

/** What the gate does with an `accept()` of the code under test. */
export type GateMode =
  /** Straight through to the kernel. */
  | "open"
  /** The call waits at the gate before it asks the kernel: clients stay queued in the backlog. */
  | "paused"
  /** The kernel's connection is held back from the caller until {@linkcode ListenerGate.release}. */
  | "holding";

/** Controls and counts of one gated listener. */
export interface ListenerGate<L extends Deno.Listener = Deno.Listener> {
  /** The listener to give the code under test (the real one behind the gate). */
  readonly listener: L;
  /** How many `accept()` calls (the async iterator's included) the code under test has made. */
  readonly accepts: number;
  /** How many of those calls are still pending. */
  readonly waiting: number;
  /** How many accepted connections the gate is holding back now. */
  readonly held: number;
  /** The current mode. */
  readonly mode: GateMode;
  /** How many `accept()` calls the gate made fail ({@linkcode ListenerGate.failNext}). */
  readonly failures: number;
  /** When each `accept()` call was made (`performance.now()`), in order. */
  readonly callTimes: readonly number[];
  /**
   * The next `count` calls that pass the gate fail, one event-loop turn later
   * (a timer), with the error `make()` returns — by default the one Deno's
   * `accept()` throws when the process is out of descriptors:
   * `Error: Too many open files (os error 24)`. No connection is taken from
   * the kernel meanwhile: queued clients stay queued.
   */
  failNext(count: number, make?: () => Error): void;
  /** Calls made from now on (and those waiting) wait before they reach the kernel. */
  pause(): void;
  /** Connections the kernel hands over from now on are held back. */
  hold(): void;
  /** Opens the gate: waiting calls go on to the kernel, held connections are handed over. */
  open(): void;
  /**
   * Waits until `condition()` holds, re-checked on every change of the gate,
   * up to `timeoutMs` (default 2000); rejects with `what` in the message then.
   */
  until(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/**
 * Puts a gate in front of `real`: every `accept()` of the returned listener
 * (and its async iterator) passes the gate, in the mode given (default
 * `"open"`). All other members are the real listener's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gateListener } from "./listen_gate.ts";
 *
 * const gate = gateListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), "holding");
 * let delivered = false;
 * const accepted = gate.listener.accept().then((conn) => {
 *   delivered = true;
 *   return conn;
 * });
 * assert.equal(gate.accepts, 1);
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: gate.listener.addr.port });
 * await gate.until(() => gate.held === 1, "the connection to be held");
 * assert.equal(delivered, false); // the kernel accepted it; the code under test has not seen it
 * gate.open();
 * (await accepted).close();
 * assert.equal(gate.held, 0);
 * client.close();
 * gate.listener.close();
 * ```
 */
export function gateListener<L extends Deno.Listener>(
  real: L,
  mode: GateMode = "open",
): ListenerGate<L> {
  let current: GateMode = mode;
  let accepts = 0;
  let waiting = 0;
  let held = 0;
  let failing = 0;
  let failures = 0;
  let makeFailure = outOfDescriptors;
  const callTimes: number[] = [];
  const openers = new Set<() => void>();
  const watchers = new Set<() => void>();
  const changed = () => {
    for (const watch of [...watchers]) watch();
  };
  const gateOpen = (allowed: (m: GateMode) => boolean): Promise<void> => {
    if (allowed(current)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const opener = () => {
        if (!allowed(current)) return;
        openers.delete(opener);
        resolve();
      };
      openers.add(opener);
    });
  };
  const setMode = (next: GateMode) => {
    current = next;
    for (const opener of [...openers]) opener();
    changed();
  };

  async function accept(): Promise<Deno.Conn> {
    accepts++;
    callTimes.push(performance.now());
    waiting++;
    changed();
    try {
      await gateOpen((m) => m !== "paused");
      if (failing > 0) {
        failing--;
        // A turn of the event loop first, as a real failing accept() takes: a loop that
        // retries at once then spins on timers instead of freezing on microtasks.
        await nextTurn();
        failures++;
        throw makeFailure();
      }
      const conn = await real.accept();
      if (current === "holding") {
        held++;
        changed();
        await gateOpen((m) => m !== "holding");
        held--;
      }
      return conn;
    } finally {
      waiting--;
      changed();
    }
  }

  async function* iterate(): AsyncGenerator<Deno.Conn> {
    while (true) {
      try {
        yield await accept();
      } catch (error) {
        // Like Deno's own listener iterator: a closed listener ends the loop.
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        throw error;
      }
    }
  }

  const listener = new Proxy(real, {
    get(target, property) {
      if (property === "accept") return accept;
      if (property === Symbol.asyncIterator) return iterate;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });

  return {
    listener,
    get accepts() {
      return accepts;
    },
    get waiting() {
      return waiting;
    },
    get held() {
      return held;
    },
    get mode() {
      return current;
    },
    get failures() {
      return failures;
    },
    get callTimes() {
      return callTimes;
    },
    failNext(count, make = outOfDescriptors) {
      failing = count;
      makeFailure = make;
      changed();
    },
    pause: () => setMode("paused"),
    hold: () => setMode("holding"),
    open: () => setMode("open"),
    async until(condition, what, timeoutMs = 2000) {
      const waited = await waitUntil(() => condition() || undefined, {
        timeoutMs,
        wakeOn: watchers,
      });
      if (waited.status !== "done") {
        throw new Error(
          `${what}: not within ${timeoutMs} ms (accept() called ${accepts} time(s), ` +
            `${waiting} pending, ${held} connection(s) held)`,
        );
      }
    },
  };
}

/**
 * The error Deno's `accept()` throws when the process has no descriptor left (EMFILE).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { outOfDescriptors } from "./listen_gate.ts";
 *
 * assert.equal(outOfDescriptors().message, "Too many open files (os error 24)");
 * ```
 */
export function outOfDescriptors(): Error {
  return new Error("Too many open files (os error 24)");
}

/**
 * Runs `start` (synchronously) with `Deno.listen` swapped for one that gates
 * the listener it makes, and returns what `start` returned and the gate.
 * `start` must call `Deno.listen` exactly once before it returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gateListen } from "./listen_gate.ts";
 *
 * // "Learner code" that listens, and accepts in a loop.
 * const { value: listener, gate } = gateListen(
 *   () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
 * );
 * gate.failNext(1);
 * const first = await listener.accept().catch((error) => error);
 * assert.equal(first.message, "Too many open files (os error 24)");
 * assert.equal(gate.accepts, 1);
 * assert.equal(gate.failures, 1);
 * listener.close();
 * ```
 */
export function gateListen<T>(
  start: () => T,
  mode: GateMode = "open",
): { value: T; gate: ListenerGate } {
  const real = Deno.listen;
  let gate: ListenerGate | undefined;
  let calls = 0;
  const gated = ((options: Deno.ListenOptions | Deno.UnixListenOptions) => {
    calls++;
    const listener = (real as (o: typeof options) => Deno.Listener)(options);
    if (calls > 1) return listener;
    gate = gateListener(listener, mode);
    return gate.listener;
  }) as typeof Deno.listen;
  Deno.listen = gated;
  let value: T;
  try {
    value = start();
  } finally {
    Deno.listen = real;
  }
  if (!gate) {
    throw new Error("the code did not call Deno.listen synchronously while it started");
  }
  return { value, gate };
}
