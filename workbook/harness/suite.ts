/**
 * Suite registration: `lessonSuite("03")` gives a lesson's suite, and
 * `suite.test(name, fn)` registers one graded check whose `fn` receives a
 * {@linkcode Grader}.
 *
 * Around every check this module does what no single check can: it skips
 * checks the machine cannot run (wrong platform, no FFI, no IPv6) with the
 * reason; it routes an unhandled rejection or an error thrown in a timer
 * callback to the check that is running, instead of letting it abort the
 * whole test module; it tells the runner at once when a check freezes the
 * event loop (freeze_watch.ts); it reports each check's verdict on the
 * grading channel (events.ts); and with `--verbose` it shows the learner's
 * program logs. Importing it installs those process-wide hooks, once.
 *
 * @module
 */
import { getLesson, type Lesson } from "../catalogue.ts";
import { ffiAvailable } from "../ffi/libc.ts";
import { setupLogging } from "../toolkit/log.ts";
import { emit, onEmit } from "./events.ts";
import type { GradeFailure } from "./failure.ts";
import { FreezeWatch } from "./freeze_watch.ts";
import { Grader } from "./grader.ts";
import { readEnv, SHARD_ENV } from "./target.ts";

/**
 * Default time budget of one test, in ms. A CPU loop in learner code is stopped here.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STEP_MS } from "./probe.ts";
 * import { TEST_MS } from "./suite.ts";
 *
 * assert.equal(TEST_MS, 6000);
 * assert.ok(TEST_MS >= 2 * STEP_MS); // room for a step that times out, and the clean-ups
 * ```
 */
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
  /** The lesson this suite grades, from the catalogue. */
  readonly lesson: Lesson;
  /** Registers one graded check. Its name is what the learner sees beside ✓ or ✗. */
  test(name: string, fn: (t: Grader) => Promise<void>, options?: TestOptions): void;
}

/** The check that is running, for errors that escape learner code. */
let current: Grader | undefined;

// Tells the runner at once when a check freezes the event loop (freeze_watch.ts).
const freezeWatch = FreezeWatch.start();
// The watch names the step in its early verdict: it hears of steps on the grading channel.
if (freezeWatch) {
  onEmit((event) => {
    if (event.type === "step") freezeWatch.step(event.step);
  });
}

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
 * leaked resource. A check that needs `need` for one part only asks it too and
 * leaves that part out where it is missing (a whole check says `requires`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requirementMissing } from "./suite.ts";
 *
 * const why = requirementMissing("ipv6");
 * assert.ok(why === undefined || why.includes("::1"));
 * ```
 */
export function requirementMissing(need: Requirement): string | undefined {
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

function readShard(): { index: number; of: number } | undefined {
  const text = readEnv(SHARD_ENV);
  const match = text?.match(/^(\d+)\/(\d+)$/);
  if (!text) return undefined;
  const [index, of] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
  if (!(of >= 1 && index < of)) {
    throw new Error(`${SHARD_ENV}="${text}": expected "I/N" with I < N`);
  }
  return { index, of };
}

/**
 * The suite of lesson `id` (`"03"`).
 *
 * @example What a suite file looks like (registers `deno test` tests, so it runs as a suite only)
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
 *
 * @example The suite knows its lesson
 * ```ts
 * import assert from "node:assert/strict";
 * import { lessonSuite } from "./suite.ts";
 *
 * const suite = lessonSuite("01");
 * assert.equal(suite.lesson.id, "01");
 * assert.equal(suite.lesson.slug, "01-sockets");
 * ```
 */
export function lessonSuite(id: string): LessonSuite {
  const lesson = getLesson(id);
  // Open libc now, before any test, for every lesson that may use it.
  if (lesson.permissions.ffi && !platformSkip(lesson)) requirementMissing("ffi");
  const shard = readShard();
  let count = 0;
  const batch: Entry[] = [];
  return {
    lesson,
    test(name, fn, options = {}) {
      // Checks are registered together once the suite module has run (a microtask later), in
      // the order runOrder() gives: that is the order deno test runs them in.
      if (batch.length === 0) {
        queueMicrotask(() => {
          for (const entry of runOrder(batch.splice(0), shard)) register(lesson, entry);
        });
      }
      batch.push({ index: count++, name, fn, options });
    },
  };
}

/** One check as the suite gave it, with its place in the suite. */
interface Entry {
  index: number;
  name: string;
  fn: (t: Grader) => Promise<void>;
  options: TestOptions;
}

/**
 * A check whose budget is at least this, in ms, is a volume or load check: it runs after the
 * others, so a learner's first failure does not wait behind a stress test.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LONG_CHECK_MS, TEST_MS } from "./suite.ts";
 *
 * assert.ok(LONG_CHECK_MS > TEST_MS);
 * ```
 */
export const LONG_CHECK_MS = 20_000;

/**
 * The checks this process runs, in the order it runs them: the quick ones in
 * suite order, then the long ones ({@linkcode LONG_CHECK_MS}). With a shard,
 * every `of`-th check of that order, from `index`.
 */
function runOrder(entries: Entry[], shard?: { index: number; of: number }): Entry[] {
  const long = (entry: Entry) => (entry.options.timeoutMs ?? TEST_MS) >= LONG_CHECK_MS;
  const ordered = [...entries.filter((e) => !long(e)), ...entries.filter(long)];
  return shard ? ordered.filter((_, i) => i % shard.of === shard.index) : ordered;
}

function register(lesson: Lesson, { index, name, fn, options }: Entry): void {
  const skip = options.skip ?? platformSkip(lesson) ??
    (options.requires ?? []).map(requirementMissing).find((why) => why !== undefined);
  emit({ type: "register", check: name, index, ...(skip !== undefined ? { skip } : {}) });
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
      const verdict = (failed: GradeFailure | undefined) =>
        emit(
          failed
            ? {
              type: "result",
              check: name,
              ok: false,
              kind: failed.details.kind,
              step: failed.details.step,
              report: failed.message,
              ms: Math.round(performance.now() - started),
            }
            : {
              type: "result",
              check: name,
              ok: true,
              ms: Math.round(performance.now() - started),
            },
        );
      try {
        await fn(t);
        t.throwIfInterrupted();
      } catch (error) {
        // A background task that failed first is the cause; what the check saw next follows.
        failure = t.backgroundFailure ?? t.explain(error, "the test");
        // The verdict is known now and the clean-ups cannot change it: tell the runner before
        // they wait (a server whose close() hangs would hold the report for seconds).
        verdict(failure);
      } finally {
        // A background task still running after the clean-ups fails the check itself.
        const late = await t.cleanup();
        if (!failure && late) verdict(late);
        failure ??= late;
        if (current === t) current = undefined;
        freezeWatch?.checkEnded();
      }
      if (!failure) verdict(undefined);
      if (failure) throw failure;
    },
  });
  if (skip) console.log(`skipped "${name}": ${skip}`);
}
