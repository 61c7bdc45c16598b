/**
 * Least-privilege flags for grading a lesson and for running its programs,
 * derived from the catalogue's permissions.
 *
 * @module
 */
import type { Lesson, LessonProgram } from "../catalogue.ts";
import { SOCKET_SLOTS, socketSlot } from "../harness/target.ts";

/** Environment variables the harness reads; nothing else of the environment is granted. */
export const HARNESS_ENV = [
  "WORKBOOK_TARGET",
  "WORKBOOK_EVENTS",
  "WORKBOOK_SCRATCH",
  "WORKBOOK_VERBOSE",
  "WORKBOOK_SHARD",
];

/** Where a grading run may read and write. */
export interface GradingPlaces {
  /** The project root (suites, harness, catalogue). */
  root: string;
  /** The directory laid out like lessons/ being graded. */
  targetRoot: string;
  /** Scratch directory: temp files and Unix socket slots. */
  scratch: string;
  /** File the harness appends its events to (the grading channel, harness/events.ts). */
  events: string;
}

/**
 * The `deno test` permission flags for one lesson.
 *
 * @example
 * ```ts
 * import { getLesson } from "../catalogue.ts";
 * import { gradingFlags } from "./permissions.ts";
 *
 * console.log(gradingFlags(getLesson("03"), {
 *   root: "/w", targetRoot: "/w/lessons", scratch: "/tmp/s", events: "/w/.workbook/e",
 * }));
 * ```
 */
export function gradingFlags(lesson: Lesson, places: GradingPlaces): string[] {
  const p = lesson.permissions;
  const net = [...p.net];
  // /dev/null: the harness counts the test process's own descriptors (descriptors.ts).
  const read = [places.root, places.targetRoot, "/dev/null", ...(p.read ?? [])];
  const write = [places.events];
  if (p.tmp) {
    read.push(places.scratch);
    write.push(places.scratch);
    for (let n = 1; n <= SOCKET_SLOTS; n++) net.push(`unix:${socketSlot(places.scratch, n)}`);
  }
  const flags = [
    `--allow-net=${net.join(",")}`,
    `--allow-read=${unique(read).join(",")}`,
    `--allow-write=${unique(write).join(",")}`,
    `--allow-env=${HARNESS_ENV.join(",")}`,
  ];
  if (p.run?.length) flags.push(`--allow-run=${p.run.join(",")}`);
  if (p.ffi) flags.push("--allow-ffi");
  return flags;
}

/**
 * Flags for running a lesson's standalone program (`deno task run N NAME`):
 * the lesson's permissions plus the program's own extras.
 * `publicHost`: the host a learner asked for with `--public`, granted on top.
 */
export function programFlags(
  lesson: Lesson,
  program: LessonProgram,
  root: string,
  targetRoot: string,
  publicHost?: string,
): string[] {
  const p = lesson.permissions;
  const net = publicHost
    ? [...p.net, publicHost.includes(":") ? `[${publicHost}]` : publicHost]
    : p.net;
  const flags = [
    `--allow-net=${net.join(",")}`,
    `--allow-read=${unique([root, targetRoot, ...(p.read ?? [])]).join(",")}`,
  ];
  const write = (program.extra?.write ?? []).map((path) => `${root}/${path}`);
  if (write.length) flags.push(`--allow-write=${write.join(",")}`);
  const run = unique([...(p.run ?? []), ...(program.extra?.run ?? [])]);
  if (run.length) flags.push(`--allow-run=${run.join(",")}`);
  if (p.ffi) flags.push("--allow-ffi");
  return flags;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
