/**
 * Learner-facing explanations: whatever learner code throws — the starter's
 * TodoError, a missing permission, a plain throw, or a failure the harness
 * already wrote — becomes a {@linkcode GradeFailure} that says what happened
 * in the learner's words, where in their file, and what to read next.
 * Values and errors are shown the same way in every message
 * ({@linkcode showValue}, {@linkcode describeError}).
 *
 * @module
 */
import { inspect } from "node:util";
import type { Lesson } from "../catalogue.ts";
import { isTodoError } from "../toolkit/todo.ts";
import { showBytes } from "./bytes.ts";
import { GradeFailure, isGradeFailure } from "./failure.ts";
import { shownPath } from "./target.ts";
import type { Transcript } from "./transcript.ts";

/** What an explanation needs to know about the check it is written for. */
export interface ExplainContext {
  /** The lesson being graded: its id and its permissions go into the words. */
  lesson: Pick<Lesson, "id" | "permissions">;
  /** What to read next, e.g. `docs/03-tcp-server.md`. */
  doc: string;
  /** The check's byte transcript, attached to every failure but "not implemented yet". */
  transcript?: Transcript;
}

/**
 * Turns anything thrown at `step` into a learner-facing
 * {@linkcode GradeFailure}: a GradeFailure gets the transcript and the doc
 * attached; the starter's TodoError becomes "lesson NN: what is not
 * implemented yet — see doc"; a missing permission says which ones the
 * lesson is graded with; anything else becomes "your code threw …", with the
 * first stack frame in the learner's files ({@linkcode learnerFrame}).
 * `Grader.explain` is this, for the running check.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { TodoError } from "../toolkit/todo.ts";
 * import { explainError } from "./explain.ts";
 *
 * const context = { lesson: getLesson("01"), doc: "docs/01-sockets.md" };
 *
 * const todo = explainError(new TodoError("formatAddress"), "formatAddress(…)", context);
 * assert.equal(todo.details.kind, "todo");
 * assert.equal(
 *   todo.message,
 *   "lesson 01: formatAddress is not implemented yet — see docs/01-sockets.md",
 * );
 *
 * const threw = explainError(new RangeError("port out of range"), "parsePort(…)", context);
 * assert.equal(threw.details.kind, "threw");
 * assert.match(threw.message, /^step: parsePort\(…\)\nactual: +your code threw RangeError: port/);
 * assert.match(threw.message, /read: docs\/01-sockets\.md$/);
 *
 * const denied = explainError(new Deno.errors.NotCapable("net access"), "listen", context);
 * assert.match(denied.details.note!, /graded with only the permissions it needs/);
 * ```
 */
export function explainError(error: unknown, step: string, context: ExplainContext): GradeFailure {
  const { lesson, doc, transcript } = context;
  if (isGradeFailure(error)) return error.attach(transcript, doc);
  if (isTodoError(error)) {
    return new GradeFailure({
      kind: "todo",
      step,
      note: `lesson ${lesson.id}: ${error.what} is not implemented yet — see ${doc}`,
    });
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return new GradeFailure({
      kind: "threw",
      step,
      actual: `${describeError(error)}`,
      note: `lesson ${lesson.id} is graded with only the permissions it needs ` +
        `(${
          JSON.stringify(lesson.permissions)
        }); bind and connect to 127.0.0.1, not 0.0.0.0 or other hosts`,
    }).attach(transcript, doc);
  }
  const where = learnerFrame(error);
  return new GradeFailure({
    kind: "threw",
    step,
    actual: `your code threw ${describeError(error)}${where ? ` (at ${where})` : ""}`,
    note: error instanceof TypeError && /not a function|undefined/.test(String(error.message))
      ? "does your file still export every function the lesson asks for, with the same name?"
      : undefined,
  }).attach(transcript, doc);
}

/**
 * One line describing an error: `ConnectionRefused: Connection refused (os error 111)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./explain.ts";
 *
 * const refused = new Deno.errors.ConnectionRefused("Connection refused (os error 111)");
 * assert.equal(describeError(refused), "ConnectionRefused: Connection refused (os error 111)");
 * assert.equal(describeError(new Error("first line\nsecond line")), "Error: first line");
 * assert.equal(describeError("a string"), "'a string'");
 * ```
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n")[0]}`;
  return inspect(error);
}

/**
 * A value as failure messages show it: bytes quoted and escaped (like
 * {@linkcode showBytes}), anything else as `node:util` inspects it, four
 * levels deep.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { showValue } from "./explain.ts";
 *
 * assert.equal(showValue(new Uint8Array([0, 104, 105, 10])), '"\\x00hi\\n"');
 * assert.equal(showValue({ port: 4000, hosts: ["::1"] }), "{ port: 4000, hosts: [ '::1' ] }");
 * assert.equal(showValue(undefined), "undefined");
 * ```
 */
export function showValue(value: unknown): string {
  if (value instanceof Uint8Array) return showBytes(value);
  return inspect(value, { depth: 4, breakLength: 100 });
}

/**
 * The first stack frame of `error` in learner code (lessons/ or a graded
 * copy, not the workbook's own files or the suites), as a path to show, or
 * undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { learnerFrame } from "./explain.ts";
 * import { PROJECT_ROOT } from "./target.ts";
 *
 * const error = new Error("boom");
 * error.stack = [
 *   "Error: boom",
 *   `    at Grader.step (file://${PROJECT_ROOT}/workbook/harness/grader.ts:10:5)`,
 *   `    at parsePort (file://${PROJECT_ROOT}/lessons/01-sockets/address.ts:12:9)`,
 * ].join("\n");
 * assert.equal(learnerFrame(error), "lessons/01-sockets/address.ts:12:9");
 * assert.equal(learnerFrame("not an error"), undefined);
 * ```
 */
export function learnerFrame(error: unknown): string | undefined {
  if (!(error instanceof Error) || !error.stack) return undefined;
  const frame = error.stack.split("\n").find((line) =>
    line.includes("file://") && !line.includes("/workbook/") && !line.includes("/tests/")
  );
  const match = frame?.match(/file:\/\/([^)\s]+)/);
  return match ? shownPath(match[1]) : undefined;
}
