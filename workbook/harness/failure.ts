/**
 * A failed check, written for the learner: which step, what was expected,
 * what arrived, the bytes exchanged and what to read next.
 *
 * @module
 */
import { readEnv } from "./target.ts";
import { type Transcript, TRANSCRIPT_LEGEND } from "./transcript.ts";

/** What kind of failure, so the runner can word its summary. */
export type FailureKind =
  | "todo" // the starter's TodoError: not implemented yet
  | "mismatch" // wrong bytes or wrong value
  | "timeout" // a step ran out of time
  | "frozen" // learner code kept the CPU busy: not even the step's deadline could fire
  | "threw" // learner code threw
  | "uncaught" // an error escaped learner code (unhandled rejection, timer callback)
  | "load"; // the learner's file could not be loaded

/** The details of a failure. */
export interface FailureDetails {
  /** What kind of failure (the runner words its summary by it). */
  kind: FailureKind;
  /** The step, in words: `send "hello\n" and read the reply`. */
  step: string;
  /** What the check wanted, in words or as a shown value. */
  expected?: string;
  /** What learner code did instead. */
  actual?: string;
  /** Prepared multi-line comparison (e.g. bytes with a caret); shown instead of expected/actual. */
  comparison?: string;
  /** One or more sentences of explanation or advice. */
  note?: string;
  /** What to read next, e.g. `docs/03-tcp-server.md (Reading until EOF)`. */
  read?: string;
}

/**
 * The error a grading suite throws. Its message is the full learner report;
 * the runner and plain `deno test` both print it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GradeFailure } from "./failure.ts";
 *
 * const failure = new GradeFailure({
 *   kind: "mismatch",
 *   step: "read the reply",
 *   expected: '"HELLO\\n"',
 *   actual: '"hello\\n"',
 *   note: "reply in upper case",
 * });
 * assert.equal(
 *   failure.message,
 *   'step: read the reply\nexpected: "HELLO\\n"\nactual:   "hello\\n"\nnote: reply in upper case',
 * );
 * failure.attach(undefined, "docs/03-tcp-server.md");
 * assert.match(failure.message, /\nread: docs\/03-tcp-server\.md$/);
 *
 * const note = "lesson 03: startServer is not implemented yet";
 * assert.equal(new GradeFailure({ kind: "todo", step: "startServer()", note }).message, note);
 * ```
 */
export class GradeFailure extends Error {
  /** Always `"GradeFailure"`: {@linkcode isGradeFailure} recognises the error by it. */
  override name = "GradeFailure";
  /** What failed; change it, then {@linkcode GradeFailure.render} the message again. */
  details: FailureDetails;
  /** The check's transcript, printed under the details (set by {@linkcode GradeFailure.attach}). */
  transcript?: Transcript;

  /** A failure with these details; its message is rendered at once. */
  constructor(details: FailureDetails) {
    super("");
    this.details = details;
    this.message = this.render();
  }

  /** Adds the test's transcript and a default "read next" (the harness does this). */
  attach(transcript: Transcript | undefined, read: string | undefined): this {
    if (transcript && !this.transcript) this.transcript = transcript;
    if (read && !this.details.read) this.details.read = read;
    this.message = this.render();
    return this;
  }

  /** Renders the report. */
  render(): string {
    const d = this.details;
    if (d.kind === "todo") return d.note ?? d.step;
    const lines = [`step: ${d.step}`];
    if (d.comparison) lines.push(...d.comparison.split("\n"));
    else {
      if (d.expected !== undefined) lines.push(`expected: ${d.expected}`);
      if (d.actual !== undefined) lines.push(`actual:   ${d.actual}`);
    }
    if (d.note) lines.push(`note: ${d.note}`);
    if (this.transcript && this.transcript.entries.length > 0) {
      lines.push(
        `transcript (${TRANSCRIPT_LEGEND}):`,
        this.transcript.format({ all: readEnv("WORKBOOK_VERBOSE") !== undefined }),
      );
    }
    if (d.read) lines.push(`read: ${d.read}`);
    return lines.join("\n");
  }
}

/**
 * True for a {@linkcode GradeFailure}, also from another copy of this module.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GradeFailure, isGradeFailure } from "./failure.ts";
 *
 * assert.equal(isGradeFailure(new GradeFailure({ kind: "timeout", step: "read" })), true);
 * assert.equal(isGradeFailure(new Error("plain")), false);
 * const copy = Object.assign(new Error("from another copy"), { name: "GradeFailure", details: {} });
 * assert.equal(isGradeFailure(copy), true);
 * ```
 */
export function isGradeFailure(error: unknown): error is GradeFailure {
  return error instanceof Error && error.name === "GradeFailure" && "details" in error;
}

/** Where a note goes when the failure already has one (see {@linkcode NoteOptions}). */
export type NotePlacement = "if-none" | "after" | "before";

/**
 * The `note` option of every harness call that can fail on the learner's
 * behalf (`t.step`, `t.expectError`, `t.eventually`, `t.connect`, the probes'
 * reads and sends, …): the suite's advice for this call, shown as `note:` if
 * it fails — never on "not implemented yet".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { Grader } from "./grader.ts";
 *
 * const t = new Grader(getLesson("04"), "example");
 * const readUntil = () => new Promise<never>(() => {}); // a read that never ends
 * const failure = await t.step("reader.readUntil()", readUntil, {
 *   timeoutMs: 10,
 *   note: "keep the bytes after the delimiter for the next call",
 *   notePlacement: "after",
 * }).catch((failure) => failure);
 * assert.match(failure.message, /\nnote: keep the bytes after the delimiter for the next call/);
 * await t.cleanup();
 * ```
 */
export interface NoteOptions {
  /** One or more sentences of advice for the learner, shown when this call fails. */
  note?: string;
  /**
   * When the failure already has a note of its own: `"if-none"` (default)
   * keeps that one; `"after"` and `"before"` join both, this one after or
   * before it.
   */
  notePlacement?: NotePlacement;
}

/**
 * @internal The one place a note is added (every harness call with
 * {@linkcode NoteOptions} uses it): if `error` is a {@linkcode GradeFailure}
 * other than "not implemented yet", puts `options.note` into it as
 * `options.notePlacement` says and renders it again. Returns `error`, to be
 * thrown: `catch (error) { throw addNote(error, options); }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addNote, GradeFailure } from "./failure.ts";
 *
 * const failure = new GradeFailure({ kind: "timeout", step: "read the reply", note: "a" });
 * addNote(failure, { note: "b", notePlacement: "after" });
 * assert.equal(failure.details.note, "a. b");
 * assert.match(failure.message, /note: a\. b/);
 * ```
 */
export function addNote(error: unknown, options: NoteOptions | undefined): unknown {
  const note = options?.note;
  if (note === undefined || !isGradeFailure(error) || error.details.kind === "todo") return error;
  const had = error.details.note;
  const placement = options?.notePlacement ?? "if-none";
  if (!had) error.details.note = note;
  else if (placement === "after" && !had.includes(note)) error.details.note = `${had}. ${note}`;
  else if (placement === "before" && !had.includes(note)) error.details.note = `${note}. ${had}`;
  error.message = error.render();
  return error;
}
