/**
 * The test command StrykerJS runs once per mutant: lesson N's suite against
 * the (mutated) reference in Stryker's sandbox, with the lesson's own
 * grading permissions, a scratch directory of its own (so two Stryker
 * workers never share a Unix socket path) and `--fail-fast` (a killed
 * mutant needs one failing check, not all of them). Exits with the suite's
 * exit code: non-zero means the mutant was killed.
 *
 * `deno run --allow-read --allow-write --allow-run=deno --allow-env workbook/mutate/run_suite.ts 03`
 *
 * @module
 */
import { getLesson } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { gradingFlags } from "../runner/permissions.ts";

/** The variable Stryker's instrumented code reads to learn which mutant is active. */
export const ACTIVE_MUTANT_ENV = "__STRYKER_ACTIVE_MUTANT__";

function pick(...names: string[]): Record<string, string> {
  return Object.fromEntries(
    names.flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
}

if (import.meta.main) {
  const lesson = getLesson(Deno.args[0] ?? "");
  const scratch = await Deno.makeTempDir({ dir: "/tmp", prefix: `mutate-${lesson.id}-` });
  const events = `${scratch}/events.jsonl`;
  await Deno.writeTextFile(events, "");
  try {
    const flags = gradingFlags(lesson, {
      root: PROJECT_ROOT,
      targetRoot: `${PROJECT_ROOT}/solutions`,
      scratch,
      events,
    }).map((flag) => flag.startsWith("--allow-env=") ? `${flag},${ACTIVE_MUTANT_ENV}` : flag);
    const env: Record<string, string> = {
      WORKBOOK_TARGET: `${PROJECT_ROOT}/solutions`,
      WORKBOOK_SCRATCH: scratch,
      WORKBOOK_EVENTS: events,
      NO_COLOR: "1",
    };
    const active = Deno.env.get(ACTIVE_MUTANT_ENV);
    if (active !== undefined) env[ACTIVE_MUTANT_ENV] = active;
    const { code } = await new Deno.Command("deno", {
      args: [
        "test",
        "--no-prompt",
        "--no-check",
        "--fail-fast",
        "--reporter=dot",
        "--v8-flags=--expose-gc",
        ...flags,
        `tests/${lesson.slug}_test.ts`,
      ],
      cwd: PROJECT_ROOT,
      clearEnv: true,
      env: { ...env, ...pick("PATH", "HOME", "DENO_DIR") },
      stdin: "null",
    }).output();
    Deno.exitCode = code;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}
