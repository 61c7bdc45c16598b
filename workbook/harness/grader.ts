/**
 * The per-check grading context: the `t` a suite's check receives (see
 * suite.ts for how checks are registered).
 *
 * A {@linkcode Grader} loads the graded implementation through the target
 * switch, runs each step of learner code against a deadline, opens recorded
 * connections, runs grader-side servers ({@linkcode GraderServer}), owns
 * background work, and asserts: every way learner code can go wrong (a
 * TodoError, a throw, a hang, an uncaught rejection, a wrong value) ends as a
 * {@linkcode GradeFailure} written for the learner (explain.ts words it).
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import { docPath, type Lesson } from "../catalogue.ts";
import { isTodoError } from "../toolkit/todo.ts";
import { emit, reportMargin } from "./events.ts";
import { describeError, explainError, showValue } from "./explain.ts";
import {
  addNote,
  GradeFailure,
  isGradeFailure,
  type NoteOptions,
  type NotePlacement,
} from "./failure.ts";
import {
  addressText,
  type ConnectAddress,
  connectAndReset,
  connectWithRetry,
  Probe,
  type ProbeConn,
  type ProbeContext,
  STEP_MS,
} from "./probe.ts";
import { scratchDir, shownPath, SOCKET_SLOTS, socketSlot, targetFile } from "./target.ts";
import { Transcript } from "./transcript.ts";
import { frozenText, waitFor, waitUntil } from "./wait.ts";

/**
 * Per-test grading context: the `t` of every suite. `lessonSuite` makes one
 * per check; engine tests and the examples here make their own, and call
 * {@linkcode Grader.cleanup} at the end as the suite would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { Grader } from "./grader.ts";
 *
 * const t = new Grader(getLesson("01"), "formats addresses");
 * assert.equal(t.doc, "docs/01-sockets.md");
 * assert.equal(await t.step("formatAddress(…)", () => "127.0.0.1:4000"), "127.0.0.1:4000");
 * t.expectEqual(2 + 2, 4, "add");
 * assert.throws(() => t.expectEqual([1, 2], [1, 3], "the list"), /expected: \[ 1, 3 \]/);
 * assert.equal(await t.cleanup(), undefined);
 * ```
 */
export class Grader {
  /** The lesson being graded, from the catalogue. */
  readonly lesson: Lesson;
  /** The check's name, as registered (what the learner sees beside ✓ or ✗). */
  readonly testName: string;
  /** Every connection's bytes and events during this check, shown when it fails. */
  readonly transcript: Transcript = new Transcript();
  readonly #abort = new AbortController();
  readonly #cleanups: (() => unknown)[] = [];
  readonly #background: { label: string; settled: Promise<void>; done: boolean; ms: number }[] = [];
  #cleaning = false;
  #backgroundFailure: GradeFailure | undefined;
  #connections = 0;
  #sockets = 0;

  /** A context for the check `testName` of `lesson` (the suite makes it; so may engine tests). */
  constructor(lesson: Lesson, testName: string) {
    this.lesson = lesson;
    this.testName = testName;
  }

  /** Aborted when learner code fails outside any awaited call; every wait listens. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The doc to read next, for failure messages. */
  get doc(): string {
    return docPath(this.lesson);
  }

  /**
   * Loads one of the lesson's files from the graded target (default: the
   * lesson's first file). Types come from the caller: `t.load<typeof Solution>()`.
   * A file that is missing or does not compile fails with kind `"load"`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   *
   * const t = new Grader(getLesson("01"), "example");
   * const failure = await t.load<never>("no_such_file.ts").catch((failure) => failure);
   * assert.equal(failure.details.kind, "load");
   * assert.match(failure.message, /deno task reset 1/);
   * await t.cleanup();
   * ```
   */
  async load<T>(file: string = this.lesson.files[0]): Promise<T> {
    const path = targetFile(this.lesson, file);
    try {
      return await import(`file://${path}`) as T;
    } catch (error) {
      const missing = error instanceof Error && /Module not found|No such file/.test(error.message);
      throw new GradeFailure({
        kind: "load",
        step: `load ${shownPath(path)}`,
        actual: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        note: missing
          ? `the file is missing; \`deno task reset ${
            Number(this.lesson.id)
          }\` brings the starter back`
          : "the file could not be loaded: fix the syntax error above (`deno check` shows it too)",
      });
    }
  }

  /**
   * Runs one step of learner code against a deadline (`timeoutMs`, default
   * {@linkcode STEP_MS}). A TodoError, a throw, a timeout or an uncaught error
   * each become a failure naming this step, with `note` as its advice.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { TodoError } from "../toolkit/todo.ts";
   * import { Grader } from "./grader.ts";
   *
   * const t = new Grader(getLesson("01"), "example");
   * const hangs = () => new Promise<never>(() => {}); // a read nobody answers
   * const late = await t.step("readLine()", hangs, {
   *   timeoutMs: 20,
   *   note: "keep the bytes after the delimiter for the next call",
   * }).catch((failure) => failure);
   * assert.equal(late.details.kind, "timeout");
   * assert.match(late.message, /^step: readLine\(\)\nexpected: your code to finish within 20 ms/);
   * assert.match(late.message, /note: keep the bytes after the delimiter/);
   *
   * const todo = await t.step("readLine()", () => {
   *   throw new TodoError("readLine");
   * }).catch((failure) => failure);
   * assert.equal(todo.message, "lesson 01: readLine is not implemented yet — see docs/01-sockets.md");
   * await t.cleanup();
   * ```
   */
  async step<T>(
    name: string,
    fn: () => T | Promise<T>,
    options: { timeoutMs?: number } & NoteOptions = {},
  ): Promise<T> {
    try {
      return await this.#race(name, fn, options.timeoutMs ?? STEP_MS);
    } catch (error) {
      throw addNote(this.explain(error, name), options);
    }
  }

  /**
   * Runs `fn` — a block of grader calls, or a suite's own helper made of
   * them — and adds `note` to the failure it ends with (never to "not
   * implemented yet"), as `placement` says. For one call, prefer its own
   * `note` option.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   *
   * const t = new Grader(getLesson("01"), "example");
   * const failure = await t.noted("one client must never stop the server", () =>
   *   t.check(false, { step: "client B's reply", expected: '"b\\n"', actual: "EOF" })
   * ).catch((failure) => failure);
   * assert.match(failure.message, /note: one client must never stop the server/);
   * assert.equal(await t.noted("unused", () => 7), 7);
   * await t.cleanup();
   * ```
   */
  async noted<T>(
    note: string,
    fn: () => T | Promise<T>,
    placement: NotePlacement = "if-none",
  ): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw addNote(error, { note, notePlacement: placement });
    }
  }

  /** Runs `fn` against the step deadline and the interrupt signal; errors come back raw. */
  async #race<T>(name: string, fn: () => T | Promise<T>, timeoutMs: number): Promise<T> {
    emit({ type: "step", check: this.testName, step: name });
    const waited = await waitFor(Promise.resolve().then(fn), {
      timeoutMs,
      signal: this.signal,
      onTime: (usedMs) => reportMargin(this.testName, name, usedMs, timeoutMs),
    });
    switch (waited.status) {
      case "done":
        return waited.value;
      case "aborted":
        throw waited.reason;
      case "frozen":
        // The deadline fired far too late: the event loop was frozen. Learner
        // code ran without ever awaiting (a CPU loop), not a slow peer.
        throw new GradeFailure({
          kind: "frozen",
          step: name,
          expected: `your code to finish within ${timeoutMs} ms`,
          actual: `it kept the CPU busy without ever yielding: the grader's ${timeoutMs} ms ` +
            `deadline could only fire ${Math.round(waited.lateMs + timeoutMs)} ms later, ` +
            `when the check's budget stopped your code`,
          note: "a loop that never awaits (e.g. `while (true) { … }` around synchronous code) " +
            "freezes every timer and connection of the program; await inside loops and check " +
            "their exit condition",
        });
      case "timeout":
        throw new GradeFailure({
          kind: "timeout",
          step: name,
          expected: `your code to finish within ${timeoutMs} ms`,
          actual:
            "it was still running (waiting for a read, an accept, or a promise that never settles?)",
        });
    }
  }

  /** Runs `fn` after the test, pass or fail, latest first (close servers, remove files). */
  defer(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }

  /**
   * @internal Runs the deferred clean-ups (errors there are not the learner's
   * concern), then waits, within its bound, for each {@linkcode background}
   * task to settle. Returns the failure for one that is still running.
   */
  async cleanup(): Promise<GradeFailure | undefined> {
    this.#cleaning = true;
    while (this.#cleanups.length > 0) {
      const fn = this.#cleanups.pop()!;
      // No signal: the check may have been interrupted, and its clean-ups must run all the same.
      await waitFor(Promise.resolve().then(fn), { timeoutMs: STEP_MS }).catch(() => {
        // A clean-up that fails (a server's close() throwing) is reported by the check itself.
      });
    }
    for (const task of this.#background) {
      await waitFor(task.settled, { timeoutMs: task.ms });
      if (!task.done) {
        return new GradeFailure({
          kind: "timeout",
          step: `${task.label}, after the check`,
          expected: `it to end within ${task.ms} ms once the check was over and everything ` +
            "was closed",
          actual: "it was still running: whatever it does next would happen during other checks",
          note: "a loop must end once it is closed (or stopped): check its flag every round, " +
            "and wake a wait that is in flight",
        }).attach(this.transcript, this.doc);
      }
    }
    return undefined;
  }

  /** @internal Called for errors that escaped learner code; fails the running step. */
  interrupt(reason: unknown, how: string): void {
    if (this.#abort.signal.aborted) return;
    const failure = isTodoError(reason) ? this.explain(reason, "your code") : new GradeFailure({
      kind: "uncaught",
      step: "your code, outside any step the grader was waiting on",
      actual: `${how}: ${describeError(reason)}`,
      note: "await every promise you start, or catch its errors (e.g. a connection handler " +
        "started without await needs its own try/catch)",
    }).attach(this.transcript, this.doc);
    this.#abort.abort(failure);
  }

  /** @internal Throws the pending uncaught failure, if any. */
  throwIfInterrupted(): void {
    if (this.signal.aborted) throw this.signal.reason;
  }

  /** What a probe of this check needs: the transcript, the interrupt signal, the check's name. */
  get probeContext(): ProbeContext {
    return { transcript: this.transcript, signal: this.signal, check: this.testName };
  }

  /** Turns anything thrown into a learner-facing {@linkcode GradeFailure}. */
  explain(error: unknown, step: string): GradeFailure {
    return explainError(error, step, {
      lesson: this.lesson,
      doc: this.doc,
      transcript: this.transcript,
    });
  }

  /** Fails the test with these details (and the transcript). */
  fail(
    details: Omit<ConstructorParameters<typeof GradeFailure>[0], "kind"> & {
      kind?: GradeFailure["details"]["kind"];
    },
  ): never {
    throw new GradeFailure({ kind: "mismatch", ...details }).attach(this.transcript, this.doc);
  }

  /** Fails unless `actual` deep-equals `expected`. */
  expectEqual<T>(actual: T, expected: T, step: string, note?: string): void {
    if (!isDeepStrictEqual(actual, expected)) {
      this.fail({ step, expected: showValue(expected), actual: showValue(actual), note });
    }
  }

  /** Fails unless `condition` holds. */
  check(
    condition: boolean,
    details: { step: string; expected: string; actual: string; note?: string },
  ): void {
    if (!condition) this.fail(details);
  }

  /**
   * Waits, to a deadline, until `condition()` holds: for a change in learner
   * state that no message announces (a registry after a client left, a count
   * of live connections). Looks every `everyMs` (default 5 ms), so it is
   * readiness, not a fixed sleep; fails with `expected … within N ms` and what
   * `actual()` says then, with `note` as advice. An uncaught error in learner
   * code ends it at once.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   *
   * const t = new Grader(getLesson("01"), "example");
   * let clients = 2;
   * setTimeout(() => clients--, 5); // a client leaves; nothing announces it
   * await t.eventually("the registry after B left", () => clients === 1, {
   *   expected: "1 client registered",
   *   actual: () => `${clients} clients registered`,
   * });
   * const failure = await t.eventually("the registry after A left", () => clients === 0, {
   *   expected: "no client registered",
   *   actual: () => `${clients} client(s) registered`,
   *   timeoutMs: 20,
   * }).catch((failure) => failure);
   * assert.equal(failure.details.kind, "timeout");
   * assert.match(failure.message, /expected: no client registered within 20 ms\nactual: +1 client/);
   * await t.cleanup();
   * ```
   */
  async eventually(
    step: string,
    condition: () => boolean,
    details: {
      expected: string;
      actual: () => string;
      timeoutMs?: number;
      everyMs?: number;
    } & NoteOptions,
  ): Promise<void> {
    if (condition()) return;
    const timeoutMs = details.timeoutMs ?? STEP_MS;
    const waited = await waitUntil(() => condition() || undefined, {
      timeoutMs,
      everyMs: details.everyMs ?? 5,
      signal: this.signal,
      onTime: (usedMs) => reportMargin(this.testName, step, usedMs, timeoutMs),
    });
    if (waited.status === "done") return;
    if (waited.status === "aborted") throw addNote(waited.reason, details);
    const failure = new GradeFailure({
      kind: waited.status,
      step,
      expected: `${details.expected} within ${timeoutMs} ms`,
      actual: waited.status === "frozen"
        ? `${details.actual()}; ${frozenText(timeoutMs, waited.lateMs)}`
        : details.actual(),
    }).attach(this.transcript, this.doc);
    throw addNote(failure, details);
  }

  /**
   * Runs learner code against the step deadline and says whether it threw.
   * A TodoError, a timeout or an uncaught error still fails the step.
   */
  async #outcome(
    step: string,
    fn: () => unknown,
  ): Promise<{ threw: true; error: unknown } | { threw: false; value: unknown }> {
    try {
      return { threw: false, value: await this.#race(step, fn, STEP_MS) };
    } catch (error) {
      if (isTodoError(error) || isGradeFailure(error)) throw this.explain(error, step);
      return { threw: true, error };
    }
  }

  /**
   * Expects learner code to throw (or reject) within the step deadline, and
   * returns the error for further checks. With `name`, only an error of that
   * class passes (`what` adds a few words on it: "an AddressInUseError (what)");
   * without, anything thrown passes and `what` describes it in full ("a
   * RangeError: …", default "an error"). With `message`, the error's message
   * must contain (string) or match (RegExp) it. A normal return fails, showing
   * what came back (without `name`: "it returned normally"). `note` is the
   * advice on every failure of this call. A TodoError or a timeout still fails.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   *
   * class AddressInUseError extends Error {
   *   override name = "AddressInUseError";
   * }
   * const t = new Grader(getLesson("01"), "example");
   * const error = await t.expectError("listenExclusive(…) on a taken port", () => {
   *   throw new AddressInUseError("127.0.0.1:4000 is taken");
   * }, {
   *   name: "AddressInUseError",
   *   what: "the port is taken",
   *   message: "127.0.0.1:4000",
   *   note: "catch Deno.errors.AddrInUse and throw an AddressInUseError naming the address",
   * });
   * assert.equal(error.message, "127.0.0.1:4000 is taken");
   *
   * const failure = await t.expectError("stateName(99)", () => "CLOSED", {
   *   what: "a RangeError: 99 is not a TCP state code",
   * }).catch((failure) => failure);
   * assert.match(
   *   failure.message,
   *   /expected: a RangeError: 99 is not a TCP state code\nactual: +it returned normally/,
   * );
   * await t.cleanup();
   * ```
   */
  async expectError<E = Error & Record<string, unknown>>(
    step: string,
    fn: () => unknown,
    expected: { name?: string; what?: string; message?: string | RegExp } & NoteOptions = {},
  ): Promise<E> {
    try {
      return await this.#expectError<E>(step, fn, expected);
    } catch (failure) {
      throw addNote(failure, expected);
    }
  }

  async #expectError<E>(
    step: string,
    fn: () => unknown,
    expected: { name?: string; what?: string; message?: string | RegExp },
  ): Promise<E> {
    const { name, what } = expected;
    const wanted = name === undefined
      ? what ?? "an error"
      : `${/^[AEIOU]/.test(name) ? "an" : "a"} ${name}${what ? ` (${what})` : ""}`;
    let outcome;
    try {
      outcome = await this.#outcome(step, fn);
    } catch (failure) {
      if (isGradeFailure(failure) && failure.details.kind === "timeout") {
        failure.details.expected = wanted;
        failure.message = failure.render();
      }
      throw failure;
    }
    if (!outcome.threw) {
      const { value } = outcome;
      this.fail({
        step,
        expected: wanted,
        actual: name === undefined
          ? "it returned normally, without an error"
          : `it returned ${showValue(value)}, without an error`,
      });
    }
    const { error } = outcome;
    if (name !== undefined) {
      this.check(error instanceof Error && error.name === name, {
        step: `${step}: the error`,
        expected: wanted,
        actual: `your code threw ${describeError(error)}`,
      });
    }
    const { message: pattern } = expected;
    if (pattern !== undefined) {
      const message = error instanceof Error ? error.message : String(error);
      const matches = typeof pattern === "string"
        ? message.includes(pattern)
        : pattern.test(message);
      this.check(matches, {
        step: `${step}: the error's message`,
        expected: typeof pattern === "string"
          ? `a message that includes ${JSON.stringify(pattern)}`
          : `a message that matches ${pattern}`,
        actual: JSON.stringify(message),
      });
    }
    return error as E;
  }

  /**
   * Opens a recorded connection to learner code, retrying while refused
   * (readiness). With `resettable: true` the probe can later `reset()` (RST).
   * A failed connection has a note of its own ("is your server listening on
   * that address?"): a `note` given here shows only with `notePlacement`
   * `"before"` or `"after"`. The probe is closed after the check.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   *
   * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // "your server"
   * const serving = listener.accept().then(async (conn) => {
   *   await conn.write(new TextEncoder().encode("HELLO\n"));
   *   conn.close();
   * });
   * const t = new Grader(getLesson("03"), "example");
   * const client = await t.connect(listener.addr, "A");
   * await client.expect("HELLO\n");
   * await client.expectEnd();
   * await serving;
   * assert.equal(t.transcript.total("A", "received"), 6);
   * await t.cleanup();
   * listener.close();
   * ```
   */
  async connect(
    address: Deno.Addr | ConnectAddress,
    label = `conn ${++this.#connections}`,
    options: { read?: boolean; timeoutMs?: number; resettable?: boolean } & NoteOptions = {},
  ): Promise<Probe> {
    const target = toConnectAddress(address);
    let conn: ProbeConn;
    try {
      conn = await connectWithRetry(target, {
        timeoutMs: options.timeoutMs,
        signal: this.signal,
        resettable: options.resettable,
      });
    } catch (error) {
      const failure = new GradeFailure({
        kind: "mismatch",
        step: `connect ${label} to ${addressText(target)}`,
        expected: "your server to accept the connection",
        actual: describeError(error),
        note: "is your server listening on that address? (it must not close its listener early)",
      }).attach(this.transcript, this.doc);
      throw addNote(failure, options);
    }
    const probe = new Probe(conn, label, this.probeContext, options);
    this.transcript.record(label, "connect", {
      detail: "path" in target
        ? addressText(target)
        : `${addressText(conn.localAddr)} → ${addressText(target)}`,
    });
    this.defer(() => probe.close());
    return probe;
  }

  /** Connects, optionally sends bytes, then resets (RST) like a crashed client. */
  async reset(
    address: Deno.Addr | ConnectAddress,
    label = `conn ${++this.#connections}`,
    first?: string | Uint8Array,
  ): Promise<void> {
    const target = toConnectAddress(address);
    if ("path" in target) throw new Error("reset() is for TCP addresses");
    await connectAndReset(target, label, this.transcript, first);
  }

  /**
   * Starts a grader-side TCP server on 127.0.0.1 port 0 for lessons where the
   * learner writes the client. `handle` scripts each accepted connection; a
   * failure inside it fails the running step at once. With `read: false`
   * accepted probes do not read until `startReading()` (a slow server).
   * The server is closed after the check; see {@linkcode GraderServer} for an example.
   */
  serve(
    handle: (conn: Probe, index: number) => Promise<void>,
    options: { hostname?: string; label?: string; read?: boolean } = {},
  ): GraderServer {
    const server = new GraderServer(
      this,
      handle,
      options.hostname ?? "127.0.0.1",
      options.label ?? "server",
      options.read ?? true,
    );
    this.defer(() => server.close());
    return server;
  }

  /** A fresh directory inside the grading scratch directory, removed after the test. */
  async tempDir(): Promise<string> {
    const scratch = scratchDir();
    await Deno.mkdir(scratch, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: scratch, prefix: `t${this.lesson.id}-` });
    this.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    return dir;
  }

  /**
   * A path for a Unix socket that the lesson may listen on. Deno grants Unix
   * sockets by exact path, so suites must take theirs from here. Any file
   * left at the path is removed after the test.
   */
  async socketPath(): Promise<string> {
    if (this.#sockets >= SOCKET_SLOTS) {
      throw new Error(`a test may use at most ${SOCKET_SLOTS} socket paths`);
    }
    const scratch = scratchDir();
    await Deno.mkdir(scratch, { recursive: true });
    const path = socketSlot(scratch, ++this.#sockets);
    await Deno.remove(path).catch(() => {});
    this.defer(() => Deno.remove(path).catch(() => {}));
    return path;
  }

  /** @internal Wraps a recorded connection accepted by a grader-side server. */
  wrapAccepted(conn: Deno.Conn, label: string, read = true): Probe {
    const probe = new Probe(conn, label, this.probeContext, { read });
    this.transcript.record(label, "accept", {
      detail: `${addressText(conn.remoteAddr)} → ${addressText(conn.localAddr)}`,
    });
    return probe;
  }

  /**
   * Fails the running test from background work (a grader-side handler, a
   * watcher on learner code): the step being awaited fails at once with this
   * error, explained like any other. Only the first abort counts.
   */
  abort(error: unknown, step = "the grader's server"): void {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort(this.explain(error, step));
  }

  /**
   * Owns work that runs beside the check (a learner server's loop) for as long
   * as the check runs. If it settles while the check still runs, `onEnd` says
   * whether that is a failure: it returns the error to fail with, or
   * `undefined` when that ending is fine (e.g. after the check closed the
   * server). Without `onEnd`, any ending is a failure: a rejection is explained
   * as a throw in `label`, a resolution as "ended by itself". The failure ends
   * the step being awaited at once, like {@linkcode abort}. At clean-up, after
   * the deferred clean-ups ran, the check waits up to `settleMs` (default
   * {@linkcode STEP_MS}) for the work to settle, and fails if it is still
   * running: so nothing it started outlives its check.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { getLesson } from "../catalogue.ts";
   * import { Grader } from "./grader.ts";
   * import { nextTurn } from "./wait.ts";
   *
   * // A server whose loop ends when it is closed: the check closes it at clean-up.
   * const t = new Grader(getLesson("03"), "example");
   * const loop = Promise.withResolvers<void>();
   * let closing = false;
   * t.defer(() => {
   *   closing = true;
   *   loop.resolve();
   * });
   * t.background("your server's loop", loop.promise, {
   *   onEnd: (outcome) =>
   *     "error" in outcome ? outcome.error : closing ? undefined : new Error("it ended early"),
   * });
   * assert.equal(await t.cleanup(), undefined);
   *
   * // A loop that ends by itself while the check runs fails the check at once.
   * const u = new Grader(getLesson("03"), "example");
   * u.background("your server's loop", Promise.resolve());
   * await nextTurn();
   * assert.equal(u.signal.aborted, true);
   * assert.match(u.backgroundFailure!.message, /actual: +it ended by itself/);
   * await u.cleanup();
   * ```
   */
  background(
    label: string,
    work: Promise<unknown>,
    options: { onEnd?: (outcome: BackgroundOutcome) => unknown; settleMs?: number } = {},
  ): void {
    const task = {
      label,
      done: false,
      ms: options.settleMs ?? STEP_MS,
      settled: Promise.resolve(),
    };
    task.settled = work.then(
      (value): BackgroundOutcome => ({ value }),
      (error): BackgroundOutcome => ({ error }),
    ).then((outcome) => {
      task.done = true;
      if (this.#cleaning) return; // the check is over: its clean-ups end the work
      let failure: unknown;
      try {
        failure = options.onEnd ? options.onEnd(outcome) : endedEarly(label, outcome);
      } catch (error) {
        failure = error;
      }
      if (failure === undefined) return;
      this.#backgroundFailure ??= this.explain(failure, label);
      this.abort(this.#backgroundFailure, label);
    });
    this.#background.push(task);
  }

  /** @internal The first failure of a {@linkcode background} task, if any. */
  get backgroundFailure(): GradeFailure | undefined {
    return this.#backgroundFailure;
  }
}

/** How a {@linkcode Grader.background} task settled. */
export type BackgroundOutcome = { value: unknown } | { error: unknown };

function endedEarly(label: string, outcome: BackgroundOutcome): unknown {
  if ("error" in outcome) return outcome.error;
  return new GradeFailure({
    kind: "mismatch",
    step: label,
    expected: "it to keep running until the check is over",
    actual: "it ended by itself",
  });
}

/**
 * A grader-side server: accepts learner clients and runs a script per
 * connection. `addr` is where learner code should connect. Made by
 * {@linkcode Grader.serve}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { Grader } from "./grader.ts";
 *
 * const t = new Grader(getLesson("02"), "example");
 * const server = t.serve(async (conn) => {
 *   await conn.expect("PING\n");
 *   await conn.send("PONG\n");
 *   await conn.closeWrite();
 * });
 * // "the learner's client":
 * const conn = await Deno.connect(server.addr);
 * await conn.write(new TextEncoder().encode("PING\n"));
 * const reply = new Uint8Array(16);
 * const n = await conn.read(reply);
 * assert.equal(new TextDecoder().decode(reply.subarray(0, n!)), "PONG\n");
 * await server.settled();
 * assert.equal(server.conns.length, 1);
 * conn.close();
 * await t.cleanup(); // closes the server
 * ```
 */
export class GraderServer {
  /** The listening socket (127.0.0.1, a port the kernel picked, unless told otherwise). */
  readonly listener: Deno.TcpListener;
  /** A probe for each connection accepted so far, in order. */
  readonly conns: Probe[] = [];
  readonly #handlers: Promise<void>[] = [];
  readonly #loop: Promise<void>;
  #closed = false;

  /**
   * Listens on `hostname` port 0 and runs `handle` for each accepted
   * connection, recorded in `grader`'s transcript as `label #1`, `label #2`, …
   * (suites use {@linkcode Grader.serve}, which also closes it after the check).
   */
  constructor(
    grader: Grader,
    handle: (conn: Probe, index: number) => Promise<void>,
    hostname: string,
    label: string,
    read: boolean,
  ) {
    const listener = Deno.listen({ hostname, port: 0 });
    this.listener = listener;
    this.#loop = (async () => {
      for (let index = 0;; index++) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch {
          return; // listener closed
        }
        const probe = grader.wrapAccepted(conn, `${label} #${index + 1}`, read);
        this.conns.push(probe);
        this.#handlers.push(
          handle(probe, index).catch((error) => grader.abort(error)),
        );
      }
    })();
  }

  /** Where learner clients should connect. */
  get addr(): { hostname: string; port: number } {
    return { hostname: this.listener.addr.hostname, port: this.listener.addr.port };
  }

  /** Waits for every connection script started so far to finish. */
  async settled(): Promise<void> {
    await Promise.all(this.#handlers);
  }

  /** Stops accepting, closes every connection, waits for the scripts. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.listener.close();
    await this.#loop;
    await Promise.all(this.conns.map((c) => c.close()));
    await Promise.all(this.#handlers);
  }
}

function toConnectAddress(address: Deno.Addr | ConnectAddress): ConnectAddress {
  if ("transport" in address) {
    if (address.transport === "unix" || address.transport === "unixpacket") {
      return { path: address.path };
    }
    if (address.transport === "tcp" || address.transport === "udp") {
      return { hostname: address.hostname, port: address.port };
    }
    throw new Error(`the workbook does not connect to ${address.transport} addresses`);
  }
  return address;
}
