/**
 * The grading harness every lesson suite uses.
 *
 * `lessonSuite("03")` registers tests (`suite.test(name, fn)`) whose `fn`
 * receives a {@linkcode Grader}: it loads the graded implementation through the
 * target switch, runs each step against a deadline, opens recorded connections,
 * runs grader-side servers, and turns every way learner code can go wrong
 * (TodoError, a throw, a hang, an uncaught rejection, a missing permission)
 * into a {@linkcode GradeFailure} written for the learner.
 *
 * @module
 */
import { inspect, isDeepStrictEqual } from "node:util";
import { docPath, getLesson, type Lesson } from "../catalogue.ts";
import { setupLogging } from "../toolkit/log.ts";
import { isTodoError } from "../toolkit/todo.ts";
import { ffiAvailable } from "../ffi/libc.ts";
import { showBytes } from "./bytes.ts";
import {
  addNote,
  GradeFailure,
  isGradeFailure,
  type NoteOptions,
  type NotePlacement,
} from "./failure.ts";
import { emit } from "./events.ts";
import { FreezeWatch } from "./freeze_watch.ts";
import {
  addressText,
  type ConnectAddress,
  connectAndReset,
  connectWithRetry,
  Probe,
  type ProbeConn,
  STEP_MS,
} from "./probe.ts";
import { readEnv, scratchDir, shownPath, SOCKET_SLOTS, socketSlot, targetFile } from "./target.ts";
import { Transcript } from "./transcript.ts";
import { frozenText, waitFor, waitUntil } from "./wait.ts";

/** Default time budget of one test. A CPU loop in learner code is stopped here. */
export const TEST_MS = 6000;

/** What a check may need from the machine; a check whose need is not met is skipped, with why. */
export type Requirement =
  | "ffi" // the libc bindings (Linux, --allow-ffi, libc.so.6)
  | "ipv6"; // the IPv6 loopback address ::1

/** Options of one graded test. */
export interface TestOptions {
  /** Whole-test budget in ms (default {@linkcode TEST_MS}); ends even a `while (true) {}`. */
  timeoutMs?: number;
  /** Skip the test, with the reason shown. */
  skip?: string;
  /** What the check needs from the machine; it is skipped, with the reason, where that is missing. */
  requires?: Requirement[];
}

/** A lesson's suite: register graded tests with {@linkcode LessonSuite.test}. */
export interface LessonSuite {
  readonly lesson: Lesson;
  /** Registers one graded check. Its name is what the learner sees beside ✓ or ✗. */
  test(name: string, fn: (t: Grader) => Promise<void>, options?: TestOptions): void;
}

let current: Grader | undefined;

// Tells the runner at once when a check freezes the event loop (freeze_watch.ts).
const freezeWatch = FreezeWatch.start();

// `deno task lesson N --verbose`: show the learner's program logs beside the checks.
if (readEnv("WORKBOOK_VERBOSE")) await setupLogging("debug");

// Learner code that rejects a promise nobody awaits, or throws in a timer
// callback, would otherwise abort the whole test module. Route it to the test
// that is running instead, with words for the learner.
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  current?.interrupt(event.reason, "a promise was rejected and nothing handled the rejection");
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  current?.interrupt(event.error, "an exception escaped a callback (timer or event handler)");
});

/** Why a lesson cannot run here, or undefined when it can. */
function platformSkip(lesson: Lesson): string | undefined {
  if (lesson.platforms && !lesson.platforms.includes(Deno.build.os)) {
    return `lesson ${lesson.id} runs on ${
      lesson.platforms.join("/")
    } only; this is ${Deno.build.os}`;
  }
  return undefined;
}

const missing = new Map<Requirement, string | undefined>();

/**
 * Why `need` is not met here, or undefined. Asked while tests are registered,
 * at the top level of a suite: opening libc inside a test would count as a
 * leaked resource.
 */
function requirementMissing(need: Requirement): string | undefined {
  if (!missing.has(need)) missing.set(need, need === "ffi" ? ffiMissing() : ipv6Missing());
  return missing.get(need);
}

function ffiMissing(): string | undefined {
  const ffi = ffiAvailable();
  return ffi.ok ? undefined : `the libc FFI bindings cannot be used here: ${ffi.reason}`;
}

function ipv6Missing(): string | undefined {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return undefined;
  } catch (error) {
    return `IPv6 loopback (::1) is not available on this machine: ${error}`;
  }
}

/**
 * The suite of lesson `id`.
 *
 * @example
 * ```ts ignore
 * import { lessonSuite } from "../workbook/harness/mod.ts";
 * import type * as Lesson from "../solutions/03-tcp-server/server.ts";
 *
 * const suite = lessonSuite("03");
 * suite.test("replies in upper case", async (t) => {
 *   const { startSerialServer } = await t.load<typeof Lesson>();
 *   const server = await t.step("start your server", () => startSerialServer({ port: 0 }));
 *   t.defer(() => server.close());
 *   const client = await t.connect(server.addr);
 *   await client.send("hello\n");
 *   await client.expect("HELLO\n");
 * });
 * ```
 */
export function lessonSuite(id: string): LessonSuite {
  const lesson = getLesson(id);
  // Open libc now, before any test, for every lesson that may use it.
  if (lesson.permissions.ffi && !platformSkip(lesson)) requirementMissing("ffi");
  return {
    lesson,
    test(name, fn, options = {}) {
      const skip = options.skip ?? platformSkip(lesson) ??
        (options.requires ?? []).map(requirementMissing).find((why) => why !== undefined);
      emit({ type: "register", check: name, ...(skip !== undefined ? { skip } : {}) });
      Deno.test({
        name,
        ignore: skip !== undefined,
        timeout: options.timeoutMs ?? TEST_MS,
        sanitizeOps: true,
        sanitizeResources: true,
        async fn() {
          const t = new Grader(lesson, name);
          freezeWatch?.checkStarted(name);
          const started = performance.now();
          current = t;
          let failure: GradeFailure | undefined;
          try {
            await fn(t);
            t.throwIfInterrupted();
          } catch (error) {
            // A background task that failed first is the cause; what the check saw next follows.
            failure = t.backgroundFailure ?? t.explain(error, "the test");
          } finally {
            // A background task still running after the clean-ups fails the check itself.
            const late = await t.cleanup();
            failure ??= late;
            if (current === t) current = undefined;
            freezeWatch?.checkEnded();
          }
          const ms = Math.round(performance.now() - started);
          emit(
            failure
              ? {
                type: "result",
                check: name,
                ok: false,
                kind: failure.details.kind,
                step: failure.details.step,
                report: failure.message,
                ms,
              }
              : { type: "result", check: name, ok: true, ms },
          );
          if (failure) throw failure;
        },
      });
      if (skip) console.log(`skipped "${name}": ${skip}`);
    },
  };
}

/** Per-test grading context: the `t` of every suite. */
export class Grader {
  readonly lesson: Lesson;
  readonly testName: string;
  readonly transcript: Transcript = new Transcript();
  readonly #abort = new AbortController();
  readonly #cleanups: (() => unknown)[] = [];
  readonly #background: { label: string; settled: Promise<void>; done: boolean; ms: number }[] = [];
  #cleaning = false;
  #backgroundFailure: GradeFailure | undefined;
  #connections = 0;
  #sockets = 0;

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
   * ```ts ignore
   * const reply = await t.step('reader.readUntil("\\n")', () => reader.readUntil("\n"), {
   *   note: "keep the bytes after the delimiter for the next call",
   * });
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
   * ```ts ignore
   * await t.noted("one client must never stop the server", () => roundTrip(b, "b\n"));
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
    freezeWatch?.step(name);
    const waited = await waitFor(Promise.resolve().then(fn), { timeoutMs, signal: this.signal });
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

  /** Turns anything thrown into a learner-facing {@linkcode GradeFailure}. */
  explain(error: unknown, step: string): GradeFailure {
    if (isGradeFailure(error)) return error.attach(this.transcript, this.doc);
    if (isTodoError(error)) {
      return new GradeFailure({
        kind: "todo",
        step,
        note: `lesson ${this.lesson.id}: ${error.what} is not implemented yet — see ${this.doc}`,
      });
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return new GradeFailure({
        kind: "threw",
        step,
        actual: `${describeError(error)}`,
        note: `lesson ${this.lesson.id} is graded with only the permissions it needs ` +
          `(${
            JSON.stringify(this.lesson.permissions)
          }); bind and connect to 127.0.0.1, not 0.0.0.0 or other hosts`,
      }).attach(this.transcript, this.doc);
    }
    const where = learnerFrame(error);
    return new GradeFailure({
      kind: "threw",
      step,
      actual: `your code threw ${describeError(error)}${where ? ` (at ${where})` : ""}`,
      note: error instanceof TypeError && /not a function|undefined/.test(String(error.message))
        ? "does your file still export every function the lesson asks for, with the same name?"
        : undefined,
    }).attach(this.transcript, this.doc);
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
      this.fail({ step, expected: show(expected), actual: show(actual), note });
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
    const timeoutMs = details.timeoutMs ?? 2000;
    const waited = await waitUntil(() => condition() || undefined, {
      timeoutMs,
      everyMs: details.everyMs ?? 5,
      signal: this.signal,
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
   * Expects learner code to throw (or reject) within the step deadline and
   * returns the error for further checks. A TodoError or a timeout still fails.
   *
   * @deprecated Use {@linkcode Grader.expectError} without `name`:
   * `t.expectError(step, fn, { what: expected })`. Kept until suites 05, 09,
   * 10, 11 and 12 no longer call it.
   */
  async expectThrows(step: string, fn: () => unknown, expected: string): Promise<unknown> {
    const outcome = await this.#outcome(step, fn);
    if (outcome.threw) return outcome.error;
    this.fail({ step, expected, actual: "it returned normally, without an error" });
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
   * ```ts ignore
   * const error = await t.expectError("listenExclusive(…) on a taken port", () => listenExclusive(…), {
   *   name: "AddressInUseError",
   *   what: "the port is taken",
   *   message: "127.0.0.1:4000",
   *   note: "catch Deno.errors.AddrInUse and throw an AddressInUseError naming the address",
   * });
   * await t.expectError("stateName(99)", () => stateName(99), {
   *   what: "a RangeError: 99 is not a TCP state code",
   * });
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
          : `it returned ${show(value)}, without an error`,
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
   * `"before"` or `"after"`.
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
    const probe = new Probe(
      conn,
      label,
      { transcript: this.transcript, signal: this.signal },
      options,
    );
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
    const probe = new Probe(conn, label, { transcript: this.transcript, signal: this.signal }, {
      read,
    });
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
   * ```ts ignore
   * const server = await t.step("startServer()", () => startServer());
   * let closing = false;
   * t.defer(() => {
   *   closing = true;
   *   return server.close();
   * });
   * t.background("your server's loop", server.finished, {
   *   onEnd: (outcome) =>
   *     "error" in outcome ? outcome.error : closing ? undefined : new GradeFailure({
   *       kind: "mismatch",
   *       step: "your server's loop",
   *       actual: "it ended before close() was called",
   *     }),
   * });
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
 * connection. `addr` is where learner code should connect.
 */
export class GraderServer {
  readonly listener: Deno.TcpListener;
  readonly conns: Probe[] = [];
  readonly #handlers: Promise<void>[] = [];
  readonly #loop: Promise<void>;
  #closed = false;

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

/** One line describing an error: `ConnectionRefused: Connection refused (os error 111)`. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n")[0]}`;
  return inspect(error);
}

function show(value: unknown): string {
  if (value instanceof Uint8Array) return showBytes(value);
  return inspect(value, { depth: 4, breakLength: 100 });
}

/** The first stack frame in learner code (lessons/ or a graded copy), if any. */
function learnerFrame(error: unknown): string | undefined {
  if (!(error instanceof Error) || !error.stack) return undefined;
  const frame = error.stack.split("\n").find((line) =>
    line.includes("file://") && !line.includes("/workbook/") && !line.includes("/tests/")
  );
  const match = frame?.match(/file:\/\/([^)\s]+)/);
  return match ? shownPath(match[1]) : undefined;
}
