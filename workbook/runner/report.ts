/**
 * The learner's report of one grading: title, file to edit, doc, ✓/✗ per
 * check, the first failure in full, and the next hint.
 *
 * @module
 */
import { docPath, type Lesson } from "../catalogue.ts";
import { shownPath } from "../harness/target.ts";
import type { GradeResult } from "./grade.ts";
import type { LessonProgress } from "./progress.ts";
import { paint } from "./style.ts";

/**
 * Renders a grading result.
 *
 * @example
 * ```ts ignore
 * import { renderReport } from "./report.ts";
 *
 * console.log(renderReport(result, undefined));
 * ```
 */
export function renderReport(result: GradeResult, progress: LessonProgress | undefined): string {
  const { lesson } = result;
  const lines: string[] = [];
  lines.push(paint("bold", `Lesson ${lesson.id} · ${lesson.title}`));
  lines.push(
    `  edit: ${
      lesson.files.map((f) => shownPath(`${result.target}/${lesson.slug}/${f}`)).join(", ")
    }`,
  );
  lines.push(`  read: ${docPath(lesson)}`);
  lines.push("");
  for (const check of result.checks) {
    if (check.skipped) lines.push(paint("gray", `  - ${check.name} (skipped)`));
    else if (check.ok) lines.push(paint("green", `  ✓ ${check.name}`));
    else {
      const why = check.kind === "todo"
        ? " — not implemented yet"
        : check.kind === "cpu"
        ? " — ran out of time (CPU loop?)"
        : check.kind === "leak"
        ? " — left sockets or timers open"
        : "";
      lines.push(paint("red", `  ✗ ${check.name}${why}`));
    }
  }
  const counted = result.checks.filter((c) => !c.skipped);
  const passing = counted.filter((c) => c.ok).length;
  lines.push("");
  if (result.problem) {
    lines.push(paint("red", `✗ ${result.problem}`));
    lines.push("");
  }
  const first = result.checks.find((c) => !c.ok);
  if (first?.message) {
    if (counted.every((c) => c.ok || c.kind === "todo")) {
      // Nothing written yet: one calm line says where to start.
      lines.push(paint("yellow", `Start here → ${first.message}`));
    } else {
      lines.push(paint("bold", `First failure: ${first.name}`));
      lines.push(indent(first.message, "  "));
    }
    lines.push("");
  }
  if (result.passed) {
    lines.push(paint("green", `All ${counted.length} checks pass. Lesson ${lesson.id} is done.`));
    lines.push(`  compare with the reference: deno task solution ${Number(lesson.id)}`);
  } else {
    lines.push(`${passing} of ${counted.length} checks pass.`);
    const shown = progress?.hintsShown ?? 0;
    if (lesson.hints.length > 0) {
      const next = Math.min(shown, lesson.hints.length - 1);
      lines.push(paint("cyan", `Hint ${next + 1}/${lesson.hints.length}: ${lesson.hints[next]}`));
      lines.push(`  more: deno task hint ${Number(lesson.id)}`);
    }
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
    const checks = p && p.status !== "started" ? `${p.passing}/${p.total}` : "";
    const date = p?.status === "passed" && p.passedAt
      ? p.passedAt.slice(0, 10)
      : p?.lastRun.slice(0, 10) ?? "";
    return [lesson.id, lesson.topic, status, checks, date];
  });
  const header = ["lesson", "topic", "status", "checks", "date"];
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
