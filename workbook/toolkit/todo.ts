/**
 * The error every unfinished starter throws.
 *
 * Starters type-check and run; each body the learner still has to write is a
 * single `throw new TodoError("functionName")`. The grading harness recognises
 * it (by `name`, so a copy of the class elsewhere works too) and reports
 * "lesson NN: functionName is not implemented yet" instead of a stack trace.
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
 * function greet(name: string): string {
 *   throw new TodoError("greet", "return `hello, ${name}`");
 * }
 * try {
 *   greet("ada");
 * } catch (error) {
 *   console.log(error instanceof TodoError); // true
 * }
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
 * import { isTodoError, TodoError } from "workbook";
 *
 * console.log(isTodoError(new TodoError("x"))); // true
 * console.log(isTodoError(new Error("x"))); // false
 * ```
 */
export function isTodoError(error: unknown): error is TodoError {
  return error instanceof Error && error.name === "TodoError" &&
    typeof (error as { what?: unknown }).what === "string";
}
