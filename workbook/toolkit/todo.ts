/**
 * The error every unfinished starter throws.
 *
 * Starters type-check and run; each body the learner still has to write is a
 * single `throw new TodoError("functionName")`. The grading harness recognises
 * it (by `name`, so a copy of the class elsewhere works too) and reports
 * "lesson NN: functionName is not implemented yet" instead of a stack trace.
 *
 * Starters use it as a global (see `globals.d.ts`), installed when this
 * module loads, so a finished lesson file needs no import to delete.
 *
 * @module
 */

/**
 * Thrown by starter code that the learner has not written yet.
 *
 * @example Mark an unfinished function
 * ```ts
 * import { TodoError } from "workbook";
 *
 * import assert from "node:assert/strict";
 *
 * function greet(name: string): string {
 *   throw new TodoError(`greet(${name})`);
 * }
 * assert.throws(() => greet("ada"), TodoError);
 * ```
 */
export class TodoError extends Error {
  override name = "TodoError";
  /** The function (or part) that is still to be written. */
  readonly what: string;

  /** @param what the function or part still to be written, e.g. `"startServer"` */
  constructor(what: string) {
    super(`${what} is not implemented yet`);
    this.what = what;
  }
}

/**
 * True when `error` is a {@linkcode TodoError}, also one thrown by another copy
 * of this module (the check is by name, not by identity).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTodoError, TodoError } from "workbook";
 *
 * assert.equal(isTodoError(new TodoError("x")), true);
 * assert.equal(isTodoError(new Error("x")), false);
 * ```
 */
export function isTodoError(error: unknown): error is TodoError {
  return error instanceof Error && error.name === "TodoError" &&
    typeof (error as { what?: unknown }).what === "string";
}

// Starters throw it without importing it: see globals.d.ts.
globalThis.TodoError = TodoError;
