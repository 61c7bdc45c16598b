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
 * import assert from "node:assert/strict";
 * import { TodoError } from "workbook";
 *
 * function greet(_name: string): string {
 *   throw new TodoError("greet");
 * }
 * assert.throws(() => greet("ada"), (error) => {
 *   assert.ok(error instanceof TodoError);
 *   assert.equal(error.what, "greet");
 *   assert.equal(error.message, "greet is not implemented yet");
 *   return true;
 * });
 * ```
 */
export class TodoError extends Error {
  /** Always `"TodoError"`: the harness recognises the error by this name. */
  override name = "TodoError";
  /** The function (or part) that is still to be written. */
  readonly what: string;

  /**
   * Builds the error; its message is "`what` is not implemented yet".
   *
   * @param what the function or part still to be written, e.g. `"startServer"`
   */
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
 *
 * // A copy of the class from another module still counts: the name decides.
 * const copy = Object.assign(new Error("y is not implemented yet"), { name: "TodoError", what: "y" });
 * assert.equal(isTodoError(copy), true);
 * ```
 */
export function isTodoError(error: unknown): error is TodoError {
  return error instanceof Error && error.name === "TodoError" &&
    typeof (error as { what?: unknown }).what === "string";
}

// Starters throw it without importing it: see globals.d.ts.
globalThis.TodoError = TodoError;
