/**
 * Starters are generated from solutions, so the two never drift apart.
 *
 * In a solution file, `// #region solution NAME` … `// #endregion solution`
 * is the learner's part; the starter has `throw new TodoError("NAME");` in
 * its place. `TodoError` is the workbook's one global (toolkit/globals.d.ts),
 * so a starter carries no scaffolding import and no lint header: once the
 * learner has replaced every stub, the file is plain code that passes
 * `deno lint` and `deno check` as it stands. (While stubs remain, lint sees
 * their unused parameters; that is the unfinished part talking.)
 *
 * @module
 */

/** `// #region solution NAME`: the start of a learner's part (indent and name captured). */
export const REGION_START = /^(\s*)\/\/ #region solution (\S+)\s*$/;
/** `// #endregion solution`: its end. */
export const REGION_END = /^\s*\/\/ #endregion solution\s*$/;

/** A problem with a solution file's markers. */
export class StarterMarkupError extends Error {
  override name = "StarterMarkupError";
}

/**
 * The starter text for one solution file. Files without regions come back
 * unchanged (helpers and programs the learner does not edit).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeStarter } from "./starter.ts";
 *
 * const solution = [
 *   "export function double(n: number): number {",
 *   "  // #region solution double",
 *   "  return 2 * n;",
 *   "  // #endregion solution",
 *   "}",
 * ].join("\n");
 * assert.equal(
 *   makeStarter(solution, "double.ts"),
 *   'export function double(n: number): number {\n  throw new TodoError("double");\n}',
 * );
 * ```
 */
export function makeStarter(solution: string, file: string): string {
  const lines = solution.split("\n");
  const out: string[] = [];
  let open: { name: string; line: number } | undefined;
  let regions = 0;
  for (const [index, line] of lines.entries()) {
    const start = line.match(REGION_START);
    if (start) {
      if (open) {
        throw new StarterMarkupError(`${file}:${index + 1}: region inside region "${open.name}"`);
      }
      open = { name: start[2], line: index + 1 };
      out.push(`${start[1]}throw new TodoError(${JSON.stringify(start[2])});`);
      regions++;
      continue;
    }
    if (REGION_END.test(line)) {
      if (!open) throw new StarterMarkupError(`${file}:${index + 1}: #endregion without #region`);
      open = undefined;
      continue;
    }
    if (!open) out.push(line);
  }
  if (open) throw new StarterMarkupError(`${file}:${open.line}: region "${open.name}" never ends`);
  return regions === 0 ? solution : out.join("\n");
}

/**
 * The reference as a learner should read it, in the shape of their file: the
 * region markers are dropped, so a diff against a learner's file shows code,
 * not authoring marks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeReference } from "./starter.ts";
 *
 * const solution = [
 *   "export function double(n: number): number {",
 *   "  // #region solution double",
 *   "  return 2 * n;",
 *   "  // #endregion solution",
 *   "}",
 * ].join("\n");
 * assert.equal(makeReference(solution), "export function double(n: number): number {\n  return 2 * n;\n}");
 * ```
 */
export function makeReference(solution: string): string {
  return solution.split("\n")
    .filter((line) => !REGION_START.test(line) && !REGION_END.test(line))
    .join("\n");
}
