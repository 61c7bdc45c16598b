/**
 * The one global the workbook defines: `TodoError`, which every unfinished
 * part of a starter throws. It is a global, not an import, so a finished
 * lesson file holds no trace of the scaffolding (nothing to delete for
 * `deno lint` to pass). Importing `"workbook"` (or the grading harness)
 * installs it; deno.json's `compilerOptions.types` declares it.
 */

/** Thrown by starter code that the learner has not written yet. */
// deno-lint-ignore no-var -- a global that code assigns (globalThis.TodoError) must be a var
declare var TodoError: typeof import("./todo.ts").TodoError;
