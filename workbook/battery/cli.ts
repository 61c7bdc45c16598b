/**
 * `deno task battery N PROGRAM [--solution] [--only WORDS] [--mib M]`: the
 * hostile battery. Starts lesson N's PROGRAM (yours, or the reference with
 * `--solution`) on port 0 and runs every scenario that applies to it —
 * resets before accept and mid-message, half-close, slowloris beside normal
 * clients, an oversized line, invalid UTF-8 and NUL, many short
 * connections, descriptor exhaustion under a lowered limit, a reader that
 * never reads, volume through; for UDP a maximum-size datagram, a flood and
 * many source ports — then prints a table: scenario, held or failed, and the
 * numbers behind it. Exits 1 when a scenario failed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getLesson } from "../catalogue.ts";
import { listCases, materializeCase } from "../runner/variants.ts";
import { normalClient, within } from "./clients.ts";
import { RunningProgram, type StartOptions } from "./program.ts";
import { type Outcome, scenarios } from "./scenarios.ts";

const USAGE = `usage: deno task battery N PROGRAM [--solution | --bad CASE] [--only WORDS] [--mib M]
  N PROGRAM    a lesson's server, e.g. 3 concurrent (deno task run N lists them)
  --solution   attack the reference instead of your program
  --bad CASE   attack a known-bad variant of the reference (tests/bad/N-slug/CASE)
  --only WORDS run only the scenarios whose name contains WORDS
  --mib M      megabytes for the volume scenario (default 100)`;

/** A scenario's row in the table. */
export interface Row extends Outcome {
  name: string;
  ms: number;
}

/** Runs the battery against one program; returns the rows. */
export async function runBattery(
  lessonKey: string,
  programName: string,
  options: {
    solution?: boolean;
    targetRoot?: string;
    only?: string;
    mib?: number;
    print?: (row: Row) => void;
  } = {},
): Promise<Row[]> {
  const lesson = getLesson(lessonKey);
  const program = lesson.programs.find((p) => p.name === programName);
  const profile = program?.battery;
  if (!program || !profile) {
    const servers = lesson.programs.filter((p) => p.battery).map((p) => p.name);
    throw new Error(
      `lesson ${lesson.id} has no server "${programName}" for the battery` +
        ` (servers: ${servers.join(", ") || "none"})`,
    );
  }
  const start = async (extra: Pick<StartOptions, "nofile"> = {}) => {
    const started = await RunningProgram.start(lesson, program, {
      solution: options.solution,
      targetRoot: options.targetRoot,
      flags: profile.flags,
      ...extra,
    });
    // One normal client first: a runtime opens some descriptors lazily, on first use,
    // and those are not the attack's doing.
    await normalClient(profile.kind, started.address, { hello: profile.hello });
    return started;
  };
  const started: RunningProgram[] = [];
  let running = await start();
  started.push(running);
  const rows: Row[] = [];
  try {
    for (const scenario of scenarios) {
      if (!scenario.applies(profile.kind, profile)) continue;
      if (options.only && !scenario.name.includes(options.only)) continue;
      if (!running.alive) {
        running = await start();
        started.push(running);
      }
      const t0 = performance.now();
      let outcome: Outcome;
      try {
        outcome = await within(
          180_000,
          scenario.name,
          scenario.run({
            program: running,
            kind: profile.kind,
            hello: profile.hello,
            mib: options.mib ?? 100,
            restart: async (extra) => {
              const fresh = await start(extra);
              started.push(fresh);
              return fresh;
            },
          }),
        );
      } catch (error) {
        outcome = {
          held: false,
          numbers: [],
          why: `the scenario broke: ${(error as Error).message}`,
        };
      }
      const row = { name: scenario.name, ms: performance.now() - t0, ...outcome };
      rows.push(row);
      options.print?.(row);
    }
    const stopped = await running.stop();
    rows.push({
      name: "stops on SIGTERM (Ctrl-C) within 3 s",
      held: stopped,
      numbers: [],
      why: stopped ? undefined : "it ignored SIGTERM and had to be killed",
      ms: 0,
    });
    options.print?.(rows.at(-1)!);
  } finally {
    await Promise.all(started.map((p) => p.stop(500)));
  }
  return rows;
}

/** One line of the table. */
export function renderRow(row: Row): string {
  const mark = row.held ? "held  " : "FAILED";
  const line = `${mark}  ${row.name.padEnd(58)} ${row.numbers.join(", ")}`;
  return row.held || !row.why
    ? line
    : `${line}\n        ↳ ${row.why.split("\n").join("\n          ")}`;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      solution: { type: "boolean" },
      bad: { type: "string" },
      only: { type: "string" },
      mib: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help || positionals.length < 2) {
    console.log(USAGE);
    Deno.exit(values.help ? 0 : 2);
  }
  const [lessonKey, programName] = positionals;
  console.log(
    `the hostile battery against lesson ${lessonKey} ${programName}` +
      `${values.solution ? " (reference)" : ""}, loopback only\n`,
  );
  let variantDir: string | undefined;
  try {
    if (values.bad) {
      const lesson = getLesson(lessonKey);
      const chosen = (await listCases(lesson, "bad")).find((c) => c.name === values.bad);
      if (!chosen) throw new Error(`lesson ${lesson.id} has no bad case "${values.bad}"`);
      console.log(`the known-bad variant "${chosen.name}": ${chosen.why}\n`);
      variantDir = await materializeCase(chosen);
    }
    const rows = await runBattery(lessonKey, programName, {
      targetRoot: variantDir,
      solution: values.solution,
      only: values.only,
      mib: values.mib ? Number(values.mib) : undefined,
      print: (row) => console.log(renderRow(row)),
    });
    const failed = rows.filter((r) => !r.held).length;
    console.log(`\n${rows.length - failed} held, ${failed} failed`);
    Deno.exitCode = failed ? 1 : 0;
  } catch (error) {
    console.error((error as Error).message);
    Deno.exitCode = 2;
  } finally {
    if (variantDir) await Deno.remove(variantDir, { recursive: true }).catch(() => {});
  }
}
