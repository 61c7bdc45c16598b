/**
 * The learner's report of one grading: title, file to edit, doc, ✓/✗ per
 * check, the first failure in full, and the next hint.
 *
 * @module
 */
import { docPath, type Lesson } from "../catalogue.ts";
import { type HintStep, hintText } from "../hints.ts";
import { shownPath } from "../harness/target.ts";
import { type Check, type GradeResult, KIND_WORDS } from "./grade.ts";
import type { LessonProgress } from "./progress.ts";
import { paint } from "./style.ts";
import type { TypeError } from "./typecheck.ts";

/**
 * The lines above the checks: title, file(s) to edit, doc to read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { renderHeader } from "./report.ts";
 *
 * assert.match(renderHeader(getLesson("02"), "/w/lessons"), /read: docs\/02-tcp-client\.md/);
 * ```
 */
export function renderHeader(lesson: Lesson, target: string): string {
  return [
    paint("bold", `Lesson ${lesson.id} · ${lesson.title}`),
    `  edit: ${lesson.files.map((f) => shownPath(`${target}/${lesson.slug}/${f}`)).join(", ")}`,
    `  read: ${docPath(lesson)}`,
    "",
  ].join("\n");
}

/** The type errors found in the learner's files, before any check. */
export function renderTypeErrors(errors: TypeError[]): string {
  const lines = [paint("red", `✗ type errors in your file (${errors.length}):`)];
  for (const error of errors.slice(0, 5)) {
    lines.push(`  ${error.where}  ${error.code}: ${error.message}`);
    for (const excerpt of error.excerpt) lines.push(paint("gray", `    ${excerpt}`));
    if (error.note) lines.push(paint("yellow", `    note: ${error.note}`));
  }
  if (errors.length > 5) lines.push(`  … ${errors.length - 5} more: deno check shows them all`);
  lines.push(paint("gray", "  (the checks run anyway, so you see which already pass)"), "");
  return lines.join("\n");
}

/**
 * One line per check: ✓, ✗ with what kind of failure, or - when skipped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderCheckLine } from "./report.ts";
 *
 * const line = renderCheckLine({ name: "echoes", ok: false, skipped: false, kind: "todo" });
 * assert.deepEqual(line.replace(/\x1b\[\d+m/g, ""), "  ✗ echoes — not implemented yet");
 * ```
 */
export function renderCheckLine(check: Check): string {
  if (check.skipped) {
    return paint("gray", `  - ${check.name} (skipped${check.skip ? `: ${check.skip}` : ""})`);
  }
  if (check.ok) return paint("green", `  ✓ ${check.name}`);
  const why = check.kind ? ` — ${KIND_WORDS[check.kind]}` : "";
  return paint("red", `  ✗ ${check.name}${why}`);
}

/** The first failure in full, with the hint for that check. */
export function renderFailure(check: Check, hint: HintStep | undefined, lessonId: string): string {
  const lines: string[] = [];
  if (check.kind === "todo") lines.push(paint("yellow", `    Start here → ${check.message ?? ""}`));
  else lines.push(indent(check.message ?? "(no details)", "    "));
  if (hint) {
    lines.push(
      paint(
        "cyan",
        `    Hint for this check (${hint.level}, hint ${hint.number}): ${hintText(hint)}`,
      ),
      paint("gray", `    next: deno task hint ${Number(lessonId)}`),
    );
  }
  return lines.join("\n");
}

/** The closing lines: counts, and what to do next. */
export function renderSummary(result: GradeResult): string {
  const { lesson, summary } = result;
  const lines: string[] = [""];
  if (result.problem) lines.push(paint("red", `✗ ${result.problem}`), "");
  if (result.passed) {
    lines.push(paint("green", `All ${summary.counted} checks pass. Lesson ${lesson.id} is done.`));
    lines.push(`  compare with the reference: deno task solution ${Number(lesson.id)}`);
  } else {
    lines.push(`${summary.passing} of ${summary.counted} checks pass.`);
    lines.push(`  more help: deno task hint ${Number(lesson.id)}   ·   read: ${docPath(lesson)}`);
  }
  return lines.join("\n");
}

function indent(text: string, prefix: string): string {
  return text.split("\n").map((line) => prefix + line).join("\n");
}

/**
 * The progress table for `deno task progress` and after `deno task all`.
 *
 * @example
 * ```ts
 * import { lessons } from "../catalogue.ts";
 * import { renderProgress } from "./report.ts";
 *
 * console.log(renderProgress(lessons, {}));
 * ```
 */
export function renderProgress(
  lessons: readonly Lesson[],
  progress: Record<string, LessonProgress>,
): string {
  const rows = lessons.map((lesson) => {
    const p = progress[lesson.id];
    const status = p?.status ?? "not started";
    const last = p?.last ? `${p.last.passing}/${p.last.total} on ${p.last.at.slice(0, 10)}` : "";
    const since = p?.passedAt ? `passed ${p.passedAt.slice(0, 10)}` : "";
    return [lesson.id, lesson.topic, status, since, last];
  });
  const header = ["lesson", "topic", "status", "since", "last grading"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
  const colour = (r: string[]) =>
    r[2] === "passed" ? paint("green", fmt(r)) : r[2] === "failing" ? paint("red", fmt(r)) : fmt(r);
  const done = rows.filter((r) => r[2] === "passed").length;
  return [
    paint("bold", fmt(header)),
    ...rows.map(colour),
    "",
    `${done} of ${lessons.length} lessons passed.`,
  ].join("\n");
}
