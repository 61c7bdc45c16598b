/**
 * A lesson's hints: one file beside the lesson, `lessons/<slug>/hints.json`,
 * the only place they are written (the doc teaches; it does not repeat them).
 *
 * ```json
 * {
 *   "hints": [
 *     {
 *       "id": "read-until-eof",
 *       "checks": ["reads a reply that arrives in several pieces"],
 *       "question": "What does one read() promise about how much of the reply it returns?",
 *       "idea": "Keep reading into a growing buffer until the delimiter shows up or read() says EOF.",
 *       "api": "conn.read(buffer) → number of bytes or null at EOF; concatenate the Uint8Array pieces."
 *     }
 *   ]
 * }
 * ```
 *
 * Each hint is graded in strength — a question, then the idea, then the API
 * to use — and never holds the code. `checks` names the checks (exact names,
 * as the report shows them) the hint answers; every check of the suite is
 * named by at least one hint.
 *
 * @module
 */
import { type Lesson } from "./catalogue.ts";
import { PROJECT_ROOT } from "./harness/target.ts";

/** The three strengths of a hint, weakest first. */
export const HINT_LEVELS = ["question", "idea", "api"] as const;

/** One strength of a hint. */
export type HintLevel = typeof HINT_LEVELS[number];

/** One hint: what it answers and its three strengths. */
export interface Hint {
  /** Short stable name, e.g. `read-until-eof` (progress remembers hints by it). */
  id: string;
  /** Exact names of the checks this hint addresses. */
  checks: string[];
  /** A question that points at the problem. */
  question: string;
  /** The idea of the answer, in words. */
  idea: string;
  /** The API to use (names, signatures, flags), never the code. */
  api: string;
}

/** One shown piece: a hint at one strength. */
export interface HintStep {
  hint: Hint;
  level: HintLevel;
  /** Position among the lesson's hints (1-based), for "hint 2/5". */
  number: number;
  /** Key progress remembers it by: `id:level`. */
  key: string;
}

/** Where a lesson's hints live. */
export function hintsPath(lesson: Lesson): string {
  return `lessons/${lesson.slug}/hints.json`;
}

/** A lesson's hints, in order (none when the file is missing). */
export async function loadHints(lesson: Lesson): Promise<Hint[]> {
  const text = await Deno.readTextFile(`${PROJECT_ROOT}/${hintsPath(lesson)}`).catch(() => "");
  if (!text) return [];
  return (JSON.parse(text) as { hints: Hint[] }).hints;
}

/**
 * Every step of the hints in reading order: hint 1 at each strength, then
 * hint 2, and so on. When `checks` is given, steps of hints that answer one
 * of those checks come first (the failing checks' own hints).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hintSteps } from "./hints.ts";
 *
 * const hints = [
 *   { id: "a", checks: ["x"], question: "a?", idea: "a.", api: "A()" },
 *   { id: "b", checks: ["y"], question: "b?", idea: "b.", api: "B()" },
 * ];
 * assert.deepEqual(hintSteps(hints, ["y"]).map((s) => s.key).slice(0, 2), ["b:question", "b:idea"]);
 * ```
 */
export function hintSteps(hints: Hint[], checks?: string[]): HintStep[] {
  const steps = hints.flatMap((hint, index) =>
    HINT_LEVELS.map((level) => ({ hint, level, number: index + 1, key: `${hint.id}:${level}` }))
  );
  if (!checks?.length) return steps;
  const answers = (step: HintStep) => step.hint.checks.some((c) => checks.includes(c));
  return [...steps.filter(answers), ...steps.filter((s) => !answers(s))];
}

/**
 * The next step not yet shown, preferring the hints of `checks`; undefined
 * when every step was shown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextHint } from "./hints.ts";
 *
 * const hints = [{ id: "a", checks: ["x"], question: "a?", idea: "a.", api: "A()" }];
 * assert.deepEqual(nextHint(hints, ["a:question"], ["x"])?.level, "idea");
 * assert.deepEqual(nextHint(hints, ["a:question", "a:idea", "a:api"]), undefined);
 * ```
 */
export function nextHint(
  hints: Hint[],
  shown: readonly string[],
  checks?: string[],
): HintStep | undefined {
  return hintSteps(hints, checks).find((step) => !shown.includes(step.key));
}

/** The text of a step, labelled with its strength. */
export function hintText(step: HintStep): string {
  const label = { question: "Ask yourself", idea: "The idea", api: "The API" }[step.level];
  return `${label}: ${step.hint[step.level]}`;
}

/**
 * Problems with a lesson's hints file: malformed entries, check names the
 * suite does not have, and checks no hint answers. `checkNames` are the
 * suite's checks (from grading the reference).
 */
export function hintProblems(hints: Hint[], checkNames: string[]): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const [index, hint] of hints.entries()) {
    const where = `hint ${index + 1} (${hint.id ?? "no id"})`;
    if (!hint.id || ids.has(hint.id)) problems.push(`${where}: needs a unique id`);
    ids.add(hint.id);
    for (const level of HINT_LEVELS) {
      if (typeof hint[level] !== "string" || hint[level].trim() === "") {
        problems.push(`${where}: "${level}" is missing`);
      }
    }
    if (!Array.isArray(hint.checks) || hint.checks.length === 0) {
      problems.push(`${where}: names no check`);
    }
    for (const check of hint.checks ?? []) {
      if (!checkNames.includes(check)) problems.push(`${where}: no check is named "${check}"`);
    }
  }
  for (const check of checkNames) {
    if (!hints.some((h) => h.checks?.includes(check))) {
      problems.push(`no hint answers the check "${check}"`);
    }
  }
  return problems;
}
