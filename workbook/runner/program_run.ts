/**
 * How a lesson's standalone program is started against any implementation.
 *
 * Programs and given files exist once, in `lessons/<slug>/`, and import the
 * learner's files by relative path (`./server.ts`). To run one against the
 * reference or a variant directory, the runner hands Deno an import map that
 * sends each of the lesson's learner files to that directory: the program's
 * own code is the same file whichever implementation it drives.
 *
 * @module
 */
import type { Lesson, LessonProgram } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { programFlags } from "./permissions.ts";

/** Where the generated import maps are kept (inside the git-ignored work dir). */
const MAP_DIR = `${PROJECT_ROOT}/.workbook/import-maps`;

/**
 * The import map that points `lessons/<slug>/<file>` at `targetRoot/<slug>/<file>`
 * for every file the learner edits, beside the project's own imports.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { PROJECT_ROOT } from "../harness/target.ts";
 * import { importMapFor } from "./program_run.ts";
 *
 * const map = await importMapFor(getLesson("01"), `${PROJECT_ROOT}/solutions`);
 * assert.deepEqual(
 *   map.imports[`file://${PROJECT_ROOT}/lessons/01-sockets/sockets.ts`],
 *   `file://${PROJECT_ROOT}/solutions/01-sockets/sockets.ts`,
 * );
 * ```
 */
export async function importMapFor(
  lesson: Lesson,
  targetRoot: string,
): Promise<{ imports: Record<string, string> }> {
  const config = JSON.parse(await Deno.readTextFile(`${PROJECT_ROOT}/deno.json`));
  const imports: Record<string, string> = {};
  for (const [name, to] of Object.entries(config.imports as Record<string, string>)) {
    imports[name] = to.startsWith("./") ? `file://${PROJECT_ROOT}/${to.slice(2)}` : to;
  }
  for (const file of lesson.files) {
    imports[`file://${PROJECT_ROOT}/lessons/${lesson.slug}/${file}`] =
      `file://${targetRoot}/${lesson.slug}/${file}`;
  }
  return { imports };
}

/**
 * The `deno run` arguments (after `run`) that start `program` of `lesson`
 * against `targetRoot` (a directory laid out like lessons/), with the
 * lesson's least permissions. For any target but lessons/ itself this writes
 * an import map under `.workbook/import-maps/`.
 */
export async function programArgs(
  lesson: Lesson,
  program: LessonProgram,
  targetRoot: string,
  publicHost?: string,
): Promise<string[]> {
  const file = `${PROJECT_ROOT}/lessons/${lesson.slug}/${program.file}`;
  const flags = programFlags(lesson, program, PROJECT_ROOT, targetRoot, publicHost);
  if (targetRoot === `${PROJECT_ROOT}/lessons`) return [...flags, file];
  await Deno.mkdir(MAP_DIR, { recursive: true });
  const key = await shortHash(`${lesson.slug}\n${targetRoot}`);
  const mapPath = `${MAP_DIR}/${lesson.slug}-${key}.json`;
  await Deno.writeTextFile(mapPath, JSON.stringify(await importMapFor(lesson, targetRoot)));
  // A program run as the learner's would be graded: the reference's own file when the
  // program is one of the lesson's learner files (e.g. the greeter in sockets.ts).
  const entry = lesson.files.includes(program.file)
    ? `${targetRoot}/${lesson.slug}/${program.file}`
    : file;
  return [...flags, `--import-map=${mapPath}`, entry];
}

async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
