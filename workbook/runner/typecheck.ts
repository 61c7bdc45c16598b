/**
 * Type errors are a failure of their own: before the suite runs, the runner
 * type-checks the learner's files of the lesson (only those; a result is
 * cached by the files' content) and reports each error with file:line, the
 * message, and a note where the workbook knows the common cause. The suite
 * runs anyway, so the learner also sees which checks already pass.
 *
 * @module
 */
import { setPriority } from "node:os";
import type { Lesson } from "../catalogue.ts";
import { PROJECT_ROOT, shownPath } from "../harness/target.ts";

/** One type error in a learner's file. */
export interface TypeError {
  /** `lessons/02-tcp-client/client.ts:12:5`. */
  where: string;
  code: string;
  message: string;
  /** The source line and its marker, as the checker showed them. */
  excerpt: string[];
  /** What usually causes it, when the workbook knows. */
  note?: string;
}

/** Causes the workbook has seen learners hit, recognised by the checker's message. */
const KNOWN_CAUSES: { test: (message: string) => boolean; note: string }[] = [
  {
    test: (m) => m.includes("Uint8Array<ArrayBufferLike>") && m.includes("Uint8Array<ArrayBuffer>"),
    note: "a variable started as `new Uint8Array(0)` gets the narrow type " +
      "Uint8Array<ArrayBuffer>, and bytes from elsewhere (a read buffer's subarray, a " +
      "concatenation) may be Uint8Array<ArrayBufferLike>. Give the variable the wide type " +
      "where you declare it: annotate it as `Uint8Array`.",
  },
  {
    test: (m) => /Property '\w+' does not exist on type 'Addr'/.test(m),
    note: "Deno.Addr is a union (tcp, udp, unix): check `addr.transport` first, then TypeScript " +
      "knows which fields exist.",
  },
  {
    test: (m) => m.includes("is possibly 'null'"),
    note: "conn.read() returns null at end of stream: handle null before using the count.",
  },
];

/**
 * Parses `deno check` output into errors (one per `TSnnnn [ERROR]` block).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCheckOutput } from "./typecheck.ts";
 *
 * const output = [
 *   "TS2322 [ERROR]: Type 'string' is not assignable to type 'number'.",
 *   '  const n: number = "s";',
 *   "        ^",
 *   "    at file:///w/lessons/02-tcp-client/client.ts:6:9",
 * ].join("\n");
 * const [error] = parseCheckOutput(output);
 * assert.deepEqual(error.where, "/w/lessons/02-tcp-client/client.ts:6:9");
 * assert.deepEqual(error.code, "TS2322");
 * ```
 */
export function parseCheckOutput(output: string): TypeError[] {
  const errors: TypeError[] = [];
  let current: { code: string; lines: string[] } | undefined;
  for (const line of output.split("\n")) {
    const head = line.match(/^(TS\d+) \[ERROR\]: (.*)$/);
    if (head) {
      current = { code: head[1], lines: [head[2]] };
      continue;
    }
    if (!current) continue;
    const at = line.match(/^\s+at file:\/\/(.+:\d+:\d+)\s*$/);
    if (at) {
      const [message, ...rest] = current.lines;
      // Before `at`: the checker's explanation, then the source line and its ^ or ~ marker.
      const marker = rest.findLastIndex((l) => /^\s*[\^~]+\s*$/.test(l));
      const split = marker > 0 ? marker - 1 : rest.length;
      const fullMessage = [message, ...rest.slice(0, split).map((l) => l.trim())]
        .filter(Boolean).join(" ");
      const excerpt = rest.slice(split).filter((l) => l.trim() !== "");
      errors.push({
        where: at[1],
        code: current.code,
        message: fullMessage,
        excerpt,
        note: KNOWN_CAUSES.find((c) => c.test(fullMessage))?.note,
      });
      current = undefined;
      continue;
    }
    current.lines.push(line);
  }
  return errors;
}

/**
 * The niceness the type check runs at. A cold check is about two seconds of CPU;
 * beside the suite's processes on a small machine it would hold back their
 * verdicts, so it takes the CPU they leave.
 */
const TYPE_CHECK_NICENESS = 19;

/** Lowers the type check's priority; without the permission it runs as it is. */
function yieldTo(pid: number): void {
  try {
    setPriority(pid, TYPE_CHECK_NICENESS);
  } catch {
    // No --allow-sys=setPriority, or the process has ended: nothing to lower.
  }
}

const CACHE_FILE = `${PROJECT_ROOT}/.workbook/typecheck-cache.json`;

async function digest(text: string): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Type-checks the learner files of `lesson` inside `targetRoot`. Returns the
 * errors in those files (errors elsewhere are the workbook's, not the
 * learner's, and are left to the self-check).
 */
export async function typeCheckLesson(lesson: Lesson, targetRoot: string): Promise<TypeError[]> {
  const files = lesson.files.map((f) => `${targetRoot}/${lesson.slug}/${f}`);
  const contents = await Promise.all(files.map((f) => Deno.readTextFile(f).catch(() => "")));
  const key = await digest(files.map((f, i) => `${f}\n${contents[i]}`).join("\n\0\n"));
  const cache: Record<string, TypeError[]> = JSON.parse(
    await Deno.readTextFile(CACHE_FILE).catch(() => "{}"),
  );
  if (cache[key]) return cache[key];
  const child = new Deno.Command("deno", {
    args: ["check", "--quiet", ...files],
    cwd: PROJECT_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  yieldTo(child.pid);
  const { stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  const errors = parseCheckOutput(decoder.decode(stdout) + decoder.decode(stderr))
    .filter((e) => files.some((f) => e.where.startsWith(`${f}:`)))
    .map((e) => ({ ...e, where: shownPath(e.where) }));
  // Keep the cache small: the latest few results are all a learner's loop needs.
  const kept = Object.entries(cache).slice(-20);
  await Deno.mkdir(`${PROJECT_ROOT}/.workbook`, { recursive: true });
  await Deno.writeTextFile(
    CACHE_FILE,
    JSON.stringify(Object.fromEntries([...kept, [key, errors]])),
  );
  return errors;
}
