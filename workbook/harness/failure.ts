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
  kind: FailureKind;
  /** The step, in words: `send "hello\n" and read the reply`. */
  step: string;
  expected?: string;
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
 * import { GradeFailure } from "./failure.ts";
 *
 * const failure = new GradeFailure({
 *   kind: "mismatch",
 *   step: "read the reply",
 *   expected: '"HELLO\\n"',
 *   actual: '"hello\\n"',
 * });
 * console.log(failure.message);
 * ```
 */
export class GradeFailure extends Error {
  override name = "GradeFailure";
  details: FailureDetails;
  transcript?: Transcript;

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

/** True for a {@linkcode GradeFailure}, also from another copy of this module. */
export function isGradeFailure(error: unknown): error is GradeFailure {
  return error instanceof Error && error.name === "GradeFailure" && "details" in error;
}

/** Where {@linkcode withNote} puts its note when the failure already has one. */
export type NotePlacement = "if-none" | "after" | "before";

/**
 * Runs `work` (a promise, or a function returning one) and, when it fails with
 * a {@linkcode GradeFailure} other than "not implemented yet", adds `note` to
 * the failure: the advice the suite has for this step. `"if-none"` (default)
 * keeps a note the failure already has; `"after"` and `"before"` join both.
 *
 * @example
 * ```ts
 * import { GradeFailure, withNote } from "./failure.ts";
 *
 * try {
 *   await withNote(
 *     Promise.reject(new GradeFailure({ kind: "timeout", step: "read the reply" })),
 *     "does your server reply to every line?",
 *   );
 * } catch (error) {
 *   console.log((error as GradeFailure).details.note); // "does your server reply to every line?"
 * }
 * ```
 */
export async function withNote<T>(
  work: Promise<T> | (() => Promise<T>),
  note: string,
  placement: NotePlacement = "if-none",
): Promise<T> {
  try {
    return await (typeof work === "function" ? work() : work);
  } catch (error) {
    if (isGradeFailure(error) && error.details.kind !== "todo") {
      const had = error.details.note;
      if (!had) error.details.note = note;
      else if (placement === "after" && !had.includes(note)) error.details.note = `${had}. ${note}`;
      else if (placement === "before" && !had.includes(note)) {
        error.details.note = `${note}. ${had}`;
      }
      error.message = error.render();
    }
    throw error;
  }
}
