/**
 * `deno task mutate N [N …] [--concurrency C] [--lines A-B]`: mutation-tests
 * the suites of the lessons named (`all` for every lesson) and prints each
 * score and each surviving mutant. See `mutate.ts` for what is mutated.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getLesson, lessons } from "../catalogue.ts";
import { renderMutation, runMutation } from "./mutate.ts";

const USAGE = `usage: deno task mutate N [N ...] [--concurrency C] [--lines A-B]
  N             a lesson (3, 03 or 03-tcp-server), or "all"
  --concurrency test runs at once (default 2)
  --lines A-B   mutate only lines A to B of the lesson's files; writes no result`;

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      concurrency: { type: "string" },
      lines: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    Deno.exit(values.help ? 0 : 2);
  }
  const chosen = positionals.includes("all") ? [...lessons] : positionals.map(getLesson);
  const range = values.lines?.match(/^(\d+)-(\d+)$/);
  if (values.lines && !range) {
    console.error(`--lines takes A-B, e.g. 120-140; got "${values.lines}"\n${USAGE}`);
    Deno.exit(2);
  }
  const concurrency = values.concurrency ? Number(values.concurrency) : undefined;
  const summaries: string[] = [];
  for (const lesson of chosen) {
    const result = await runMutation(lesson, {
      concurrency,
      lines: range ? { from: Number(range[1]), to: Number(range[2]) } : undefined,
    });
    const text = renderMutation(result);
    console.log(`\n${text}`);
    summaries.push(text.split("\n")[0]);
  }
  if (summaries.length > 1) console.log(`\n${summaries.join("\n")}`);
}
