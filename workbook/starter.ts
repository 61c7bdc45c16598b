/**
 * Starters are generated from solutions, so the two never drift apart.
 *
 * In a solution file:
 * - `// #region solution NAME` … `// #endregion solution` is the learner's
 *   part; the starter has `throw new TodoError("NAME");` in its place;
 * - a line `// starter: CODE` becomes `CODE` in the starter.
 *
 * Starters get a lint header (unused parameters are expected in a stub).
 *
 * @module
 */

/** `// #region solution NAME`: the start of a learner's part (indent and name captured). */
export const REGION_START = /^(\s*)\/\/ #region solution (\S+)\s*$/;
/** `// #endregion solution`: its end. */
export const REGION_END = /^\s*\/\/ #endregion solution\s*$/;
const STARTER_LINE = /^(\s*)\/\/ starter: (.*)$/;

/** The header every generated starter begins with. */
export const STARTER_HEADER = "// deno-lint-ignore-file no-unused-vars require-await";

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
 * import { makeStarter } from "./starter.ts";
 *
 * const solution = [
 *   '// starter: import { TodoError } from "workbook";',
 *   "export function double(n: number): number {",
 *   "  // #region solution double",
 *   "  return 2 * n;",
 *   "  // #endregion solution",
 *   "}",
 * ].join("\n");
 * console.log(makeStarter(solution, "double.ts"));
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
    if (open) continue;
    const starterLine = line.match(STARTER_LINE);
    out.push(starterLine ? starterLine[1] + starterLine[2] : line);
  }
  if (open) throw new StarterMarkupError(`${file}:${open.line}: region "${open.name}" never ends`);
  if (regions === 0) return solution;
  const text = out.join("\n");
  if (!/import \{[^}]*\bTodoError\b[^}]*\} from/.test(text)) {
    throw new StarterMarkupError(
      `${file}: has solution regions but its starter would not import TodoError ` +
        `(add a line \`// starter: import { TodoError } from "workbook";\`)`,
    );
  }
  return `${STARTER_HEADER}\n${text}`;
}

/**
 * The reference as a learner should read it, in the shape of their file: the
 * region markers and `// starter:` lines are dropped, and the starter's lint
 * header is kept, so
 * a diff against a learner's file shows code, not authoring marks.
 *
 * @example
 * ```ts
 * import { makeReference } from "./starter.ts";
 *
 * const solution = [
 *   '// starter: import { TodoError } from "workbook";',
 *   "export function double(n: number): number {",
 *   "  // #region solution double",
 *   "  return 2 * n;",
 *   "  // #endregion solution",
 *   "}",
 * ].join("\n");
 * console.log(makeReference(solution));
 * ```
 */
export function makeReference(solution: string): string {
  const lines = solution.split("\n");
  if (!lines.some((line) => REGION_START.test(line))) return solution;
  const kept = lines
    .filter((line) => !REGION_START.test(line) && !REGION_END.test(line))
    .filter((line) => !STARTER_LINE.test(line));
  return `${STARTER_HEADER}\n${kept.join("\n")}`;
}
