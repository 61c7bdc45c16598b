/**
 * Starters as the runner needs them: the text generated from each learner
 * file of the reference (`workbook/starter.ts` does the generating), and a
 * gradable directory holding them, so the self-check grades pristine
 * starters even in a learner's copy.
 *
 * @module
 */
import type { Lesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { makeStarter } from "../starter.ts";
import { WORK_DIR } from "./grade.ts";
import { copySolution } from "./variants.ts";

/**
 * Builds a gradable directory holding the lesson's freshly generated starter,
 * so the self-check grades pristine starters even in a learner's copy.
 */
export async function materializeStarter(lesson: Lesson): Promise<string> {
  await Deno.mkdir(`${WORK_DIR}/tmp`, { recursive: true });
  const root = await Deno.makeTempDir({ dir: `${WORK_DIR}/tmp`, prefix: `starter-${lesson.id}-` });
  const lessonDir = await copySolution(lesson, root);
  for (const [name, text] of await generateStarters(lesson)) {
    await Deno.writeTextFile(`${lessonDir}/${name}`, text);
  }
  return root;
}

/**
 * The generated starter text of each file the learner edits. Only those files
 * have a reference in `solutions/`; programs and given files live once, in
 * `lessons/`.
 */
export async function generateStarters(lesson: Lesson): Promise<Map<string, string>> {
  const dir = `${PROJECT_ROOT}/solutions/${lesson.slug}`;
  const out = new Map<string, string>();
  for (const name of [...lesson.files].sort()) {
    out.set(name, makeStarter(await Deno.readTextFile(`${dir}/${name}`), `${dir}/${name}`));
  }
  return out;
}

/** One learner file in `lessons/`, beside the starter generated for it. */
export interface StarterBeside {
  /** File name inside `lessons/<slug>/`. */
  name: string;
  /** The generated starter text. */
  starter: string;
  /** The file as it is now; undefined when it is missing. */
  current: string | undefined;
}

/**
 * Each learner file of `lesson` in `lessons/`, with the starter it would be:
 * the one comparison behind sync, reset, "untouched" progress and the
 * self-check's drift line.
 */
export async function startersBeside(lesson: Lesson): Promise<StarterBeside[]> {
  const dir = `${PROJECT_ROOT}/lessons/${lesson.slug}`;
  const out: StarterBeside[] = [];
  for (const [name, starter] of await generateStarters(lesson)) {
    const current = await Deno.readTextFile(`${dir}/${name}`).catch(() => undefined);
    out.push({ name, starter, current });
  }
  return out;
}
