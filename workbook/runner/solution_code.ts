/**
 * Docs teach and hints help; neither hands over the code. This finds lines of
 * a lesson's solution regions (the code the learner writes) that appear in
 * its doc or its hints file.
 *
 * A line counts when, trimmed and with runs of white space collapsed, it is at
 * least {@linkcode MIN_CODE_CHARS} characters long and not a comment. It is
 * found when the same text stands anywhere in the doc or in a hint.
 *
 * @module
 */
import { docPath, type Lesson } from "../catalogue.ts";
import { hintsPath } from "../hints.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { makeStarter, REGION_END, REGION_START } from "../starter.ts";

/** Shorter lines (`return total;`, `} finally {`) are words any text may use. */
export const MIN_CODE_CHARS = 20;

/** One solution line found where the learner reads. */
export interface SolutionCodeFound {
  /** `solutions/<slug>/<file>:<line>`. */
  from: string;
  /** Where it was found: the doc or the hints file. */
  in: string;
  code: string;
}

function normalize(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/**
 * The lines of solution regions in `text` worth guarding: long enough, not comments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regionCodeLines } from "./solution_code.ts";
 *
 * const solution = [
 *   "export function f(conn: Deno.Conn) {",
 *   "  // #region solution f",
 *   "  // read until the peer is done",
 *   "  const reply = await readAll(conn, 1024);",
 *   "  return reply;",
 *   "  // #endregion solution",
 *   "}",
 * ].join("\n");
 * assert.deepEqual(regionCodeLines(solution).map((l) => l.code), [
 *   "const reply = await readAll(conn, 1024);",
 * ]);
 * ```
 */
export function regionCodeLines(text: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  let inside = false;
  for (const [index, raw] of text.split("\n").entries()) {
    if (REGION_START.test(raw)) inside = true;
    else if (REGION_END.test(raw)) inside = false;
    else if (inside) {
      const code = normalize(raw);
      if (code.length < MIN_CODE_CHARS || /^(\/\/|\/\*|\*)/.test(code)) continue;
      out.push({ line: index + 1, code });
    }
  }
  return out;
}

/**
 * Solution lines of `lesson` that its doc, its hints file or its starters'
 * comments repeat (a JSDoc that spells out the line the learner is to write).
 */
export async function solutionCodeInDocs(lesson: Lesson): Promise<SolutionCodeFound[]> {
  const places: { in: string; text: string }[] = [];
  for (const path of [docPath(lesson), hintsPath(lesson)]) {
    const text = await Deno.readTextFile(`${PROJECT_ROOT}/${path}`).catch(() => undefined);
    if (text !== undefined) places.push({ in: path, text: normalize(text) });
  }
  for (const file of lesson.files) {
    const source = await Deno.readTextFile(`${PROJECT_ROOT}/solutions/${lesson.slug}/${file}`);
    places.push({
      in: `the starter's comments (lessons/${lesson.slug}/${file})`,
      text: normalize(commentsOf(makeStarter(source, file))),
    });
  }
  const found: SolutionCodeFound[] = [];
  for (const file of lesson.files) {
    const path = `solutions/${lesson.slug}/${file}`;
    const source = await Deno.readTextFile(`${PROJECT_ROOT}/${path}`);
    for (const { line, code } of regionCodeLines(source)) {
      for (const place of places) {
        if (place.text.includes(code)) found.push({ from: `${path}:${line}`, in: place.in, code });
      }
    }
  }
  return found;
}

/** The comment text of a source file: line comments and block comments. */
function commentsOf(source: string): string {
  const blocks = source.match(/\/\*[\s\S]*?\*\//g) ?? [];
  const lines = source.split("\n").map((l) => l.match(/^\s*\/\/(.*)$/)?.[1]).filter(Boolean);
  return [...blocks.map((b) => b.replace(/^\s*\*/gm, "")), ...lines].join("\n");
}
