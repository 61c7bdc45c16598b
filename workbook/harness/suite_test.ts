/**
 * Tests of suite registration, run as a real suite in a child `deno test`:
 * suite.ts installs process-wide hooks when it loads, which a test in this
 * process must not share.
 */
import assert from "node:assert/strict";
import { EVENTS_ENV, parseEvents, type ResultEvent } from "./events.ts";
import { PROJECT_ROOT, SHARD_ENV } from "./target.ts";

/** Runs `body` (the checks of a lesson 01 suite, as source) in a child `deno test`. */
async function runSuite(
  body: string,
  env: Record<string, string> = {},
): Promise<{ events: ReturnType<typeof parseEvents> }> {
  const dir = await Deno.makeTempDir({ prefix: "suite-test-" });
  try {
    const file = `${dir}/suite_test.ts`;
    const events = `${dir}/events.jsonl`;
    await Deno.writeTextFile(
      file,
      `import { lessonSuite } from "${PROJECT_ROOT}/workbook/harness/mod.ts";\n` +
        `const suite = lessonSuite("01");\n${body}\n`,
    );
    await new Deno.Command("deno", {
      args: ["test", "-A", "--no-check", `--config=${PROJECT_ROOT}/deno.json`, file],
      env: { [EVENTS_ENV]: events, NO_COLOR: "1", ...env },
      stdout: "null",
      stderr: "null",
    }).output();
    return { events: parseEvents(await Deno.readTextFile(events).catch(() => "")) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a check that freezes the event loop gets an early verdict naming its step", async () => {
  const { events } = await runSuite(`
suite.test("spins", async (t) => {
  await t.step("a loop that never awaits", () => {
    const end = Date.now() + 3000;
    while (Date.now() < end) { /* never yields */ }
  });
});
suite.test("skipped here", async () => {}, { skip: "not on this machine" });`);
  assert.deepEqual(
    events.filter((e) => e.type === "register"),
    [
      { type: "register", check: "spins", index: 0 },
      { type: "register", check: "skipped here", index: 1, skip: "not on this machine" },
    ],
  );
  assert.ok(
    events.some((e) => e.type === "step" && e.step === "a loop that never awaits"),
    "the step is on the channel",
  );
  const results = events.filter((e): e is ResultEvent => e.type === "result");
  // The freeze watch's early verdict (from its worker, fed the step through onEmit) …
  const early = results.find((e) => e.kind === "frozen");
  assert.ok(early, `no early frozen verdict in ${JSON.stringify(results)}`);
  assert.equal(early.check, "spins");
  assert.match(early.report ?? "", /^step: a loop that never awaits$/m);
  // … then the check's own verdict: the step finished, late, and nothing failed.
  assert.deepEqual(results.at(-1)?.ok, true);
});

Deno.test("a shard registers and runs only its own share of the checks, with their places", async () => {
  const body = ["a", "b", "c", "d", "e"]
    .map((name) => `suite.test("${name}", async () => {});`).join("\n");
  const { events } = await runSuite(body, { [SHARD_ENV]: "1/2" });
  assert.deepEqual(
    events.filter((e) => e.type === "register"),
    [{ type: "register", check: "b", index: 1 }, { type: "register", check: "d", index: 3 }],
  );
  assert.deepEqual(
    events.filter((e): e is ResultEvent => e.type === "result").map((e) => [e.check, e.ok]),
    [["b", true], ["d", true]],
  );
  const broken = await runSuite(body, { [SHARD_ENV]: "2/2" });
  assert.deepEqual(broken.events, [], "a shard that does not exist registers nothing");
});

Deno.test("long checks (a budget of LONG_CHECK_MS or more) run after the others, and shards share them", async () => {
  const body = `
suite.test("load", async () => {}, { timeoutMs: 60_000 });
suite.test("a", async () => {});
suite.test("volume", async () => {}, { timeoutMs: 20_000 });
suite.test("b", async () => {});
suite.test("c", async () => {});`;
  const ran = (events: ReturnType<typeof parseEvents>) =>
    events.filter((e): e is ResultEvent => e.type === "result").map((e) => e.check);
  const whole = await runSuite(body);
  assert.deepEqual(ran(whole.events), ["a", "b", "c", "load", "volume"]);
  assert.deepEqual(
    whole.events.filter((e) => e.type === "register").map((e) => [e.check, e.index]),
    [["a", 1], ["b", 3], ["c", 4], ["load", 0], ["volume", 2]],
    "each check keeps its place in the suite",
  );
  assert.deepEqual(ran((await runSuite(body, { [SHARD_ENV]: "0/2" })).events), [
    "a",
    "c",
    "volume",
  ]);
  assert.deepEqual(ran((await runSuite(body, { [SHARD_ENV]: "1/2" })).events), ["b", "load"]);
});
