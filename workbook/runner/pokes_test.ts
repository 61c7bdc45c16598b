import assert from "node:assert/strict";
import { lessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import {
  matchesOutput,
  missingInOrder,
  parsePokes,
  replacePorts,
  runPoke,
  type ShellResult,
} from "./pokes.ts";

const fence = "```";

Deno.test("parsePokes reads commands, promised output, continuations, heredocs and settings", () => {
  const doc = [
    "# A doc",
    `${fence}sh`,
    "$ not a poke: an ordinary block is never run",
    fence,
    `${fence}sh poke timeout=30 needs=socat`,
    "$ deno task run 3 serial --port 9000 &      # the server",
    "... listening on 127.0.0.1:9000",
    "$ printf 'hello\\n' | nc -N 127.0.0.1 9000",
    "ack-HELLO",
    "",
    "$ echo one \\",
    "  two",
    "one two",
    "$ python3 - <<'EOF'",
    "print('hi')",
    "EOF",
    "hi",
    "$ a && b",
    fence,
  ].join("\n");
  const [block, ...rest] = parsePokes(doc, "docs/x.md");
  assert.equal(rest.length, 0);
  assert.equal(block.doc, "docs/x.md");
  assert.equal(block.line, 5);
  assert.equal(block.timeoutMs, 30_000);
  assert.equal(block.problem, undefined);
  assert.deepEqual(block.needs.sort(), ["nc", "python3", "socat"]);
  assert.deepEqual(block.steps.map((s) => [s.line, s.background, s.expected]), [
    [6, true, ["... listening on 127.0.0.1:9000"]],
    [8, false, ["ack-HELLO"]],
    [11, false, ["one two"]],
    [14, false, ["hi"]],
    [18, false, []],
  ]);
  assert.equal(block.steps[2].command, "echo one \\\n  two");
  assert.equal(block.steps[3].command, "python3 - <<'EOF'\nprint('hi')\nEOF");
});

Deno.test("parsePokes reports a block it cannot run instead of skipping it", () => {
  const [unknown] = parsePokes(`${fence}sh poke retries=3\n$ true\n${fence}\n`, "d.md");
  assert.match(unknown.problem ?? "", /unknown setting `retries=3`/);
  const [empty] = parsePokes(`${fence}sh poke\noutput without a command\n${fence}\n`, "d.md");
  assert.match(empty.problem ?? "", /a poke starts with `\$ `/);
  const [open] = parsePokes(`${fence}sh poke\n$ true\n`, "d.md");
  assert.match(open.problem ?? "", /never closed/);
});

Deno.test("matchesOutput: exact lines, ... inside a line and as lines, spaces and blank ends", () => {
  assert(matchesOutput(["ack-HELLO"], "ack-HELLO\n"));
  assert(!matchesOutput(["ack-HELLO"], "ack-hello\n"), "case matters");
  assert(!matchesOutput(["ack-HELLO"], "ack-HELLO\nack-WORLD\n"), "an extra line fails");
  assert(!matchesOutput(["ack-HELLO", "ack-WORLD"], "ack-HELLO\n"), "a missing line fails");
  assert(!matchesOutput([], "something\n"), "promising nothing means nothing");
  assert(matchesOutput([], ""));
  assert(
    matchesOutput(
      ["hello ..., you reached 127.0.0.1:9000"],
      "hello 1.2.3.4:5, you reached 127.0.0.1:9000",
    ),
  );
  assert(
    !matchesOutput(
      ["hello ..., you reached 127.0.0.1:9000"],
      "hello x, you reached 127.0.0.1:9001",
    ),
  );
  assert(matchesOutput(["...", "ack-TWO", "..."], "log\nlog\nack-TWO\nlog\n"));
  assert(matchesOutput(["...", "ack-TWO"], "ack-TWO\n"), "a ... line may stand for no line");
  assert(!matchesOutput(["...", "ack-TWO"], "ack-TWO\nlater\n"));
  assert(matchesOutput(["LISTEN 0   511   127.0.0.1:9000"], "LISTEN  0 511 127.0.0.1:9000   \n\n"));
  assert(matchesOutput(["a.b (c) [d] $e"], "a.b (c) [d] $e"), "regex characters are literal");
  assert(!matchesOutput(["a.b"], "axb"));
});

Deno.test("missingInOrder finds promised log lines in order, others between", () => {
  const log = ["12:00 listening on 127.0.0.1:9000", "12:01 x left (reset)", "12:02 stopped"];
  assert.equal(missingInOrder(["... left (reset)", "... stopped"], log), undefined);
  assert.equal(missingInOrder(["...", "... stopped"], log), undefined);
  assert.equal(missingInOrder(["... stopped", "... left (reset)"], log), "... left (reset)");
  assert.equal(missingInOrder(["... left (eof)"], log), "... left (eof)");
});

Deno.test("replacePorts replaces 9000–9099 as whole numbers only", () => {
  const ports = new Map([[9000, 41000], [9001, 41001]]);
  assert.equal(
    replacePorts("nc 127.0.0.1 9000; :9001 /dev/tcp/h/9000 19000 90001 9002 10.0.9000", ports),
    "nc 127.0.0.1 41000; :41001 /dev/tcp/h/41000 19000 90001 9002 10.0.9000",
  );
});

/** A fake shell: each script's output from a table, and a record of what ran. */
function fakeShell(outputs: Record<string, string>) {
  const ran: string[] = [];
  const runCommand = (script: string): Promise<ShellResult> => {
    ran.push(script);
    return Promise.resolve({ output: outputs[script] ?? "", timedOut: false });
  };
  return { ran, runCommand };
}

Deno.test("runPoke passes when each command prints what the doc promises", async () => {
  const [block] = parsePokes(`${fence}sh poke\n$ echo hi\nhi\n$ true\n${fence}\n`, "d.md");
  const shell = fakeShell({ "echo hi": "hi\n" });
  const outcome = await runPoke(block, { hasTool: () => Promise.resolve(true), ...shell });
  assert.equal(outcome.ok, true, outcome.detail);
  assert.equal(outcome.skipped, undefined);
  assert.equal(outcome.detail, "2 commands");
  assert.deepEqual(shell.ran, ["echo hi", "true"]);
});

Deno.test("runPoke fails a poke whose output differs, saying where and what", async () => {
  const doc = `intro\n${fence}sh poke\n$ printf 'hello\\n' | nc -N 127.0.0.1 9000\nack-HELLO\n` +
    `$ echo never\n${fence}\n`;
  const [block] = parsePokes(doc, "docs/03-x.md");
  const shell = {
    ran: [] as string[],
    runCommand: (script: string) => {
      shell.ran.push(script);
      return Promise.resolve({ output: "ack-hello\n", timedOut: false });
    },
  };
  const outcome = await runPoke(block, { hasTool: () => Promise.resolve(true), ...shell });
  assert.equal(outcome.ok, false);
  assert.equal(outcome.skipped, undefined);
  assert.match(outcome.detail, /docs\/03-x\.md:3: `printf 'hello\\n' \| nc -N 127\.0\.0\.1 9000`/);
  assert.match(outcome.detail, /the doc promises:\n {4}ack-HELLO\n {2}it printed:\n {4}ack-hello/);
  assert.equal(shell.ran.length, 1, "the block stops at the first broken promise");
  // The doc's port became a free port of this run, in the command.
  assert.doesNotMatch(shell.ran[0], / 9000$/);
  assert.match(shell.ran[0], /^printf 'hello\\n' \| nc -N 127\.0\.0\.1 \d+$/);
});

Deno.test("runPoke reports a command that runs out of time", async () => {
  const [block] = parsePokes(`${fence}sh poke timeout=1\n$ sleep 99\n${fence}\n`, "d.md");
  const outcome = await runPoke(block, {
    hasTool: () => Promise.resolve(true),
    runCommand: () => Promise.resolve({ output: "", timedOut: true }),
  });
  assert.equal(outcome.ok, false);
  assert.match(outcome.detail, /did not finish within 1 s/);
});

Deno.test({
  name: "runPoke waits for a background command's late lines, not for the ones its stop prints",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // The first line printed 300 ms after the block's last command ended: a watch's next look.
    const doc = `${fence}sh poke timeout=5\n` +
      `$ trap 'echo stopped; exit' TERM; sleep 0.3; echo late; while :; do sleep 0.05; done &\n` +
      `...\nlate\nstopped\n$ true\n${fence}\n`;
    const [block] = parsePokes(doc, "d.md");
    const outcome = await runPoke(block, { hasTool: () => Promise.resolve(true) });
    assert.equal(outcome.ok, true, outcome.detail);
    // `stopped` comes with the stop: the runner did not wait its 5 s timeout for it.
    assert.ok(outcome.ms < 4000, `took ${outcome.ms} ms`);

    const never = `${fence}sh poke timeout=1\n$ sleep 0.1; echo other; sleep 9 &\n...\n` +
      `never\n$ true\n${fence}\n`;
    const missing = await runPoke(parsePokes(never, "d.md")[0], {
      hasTool: () => Promise.resolve(true),
    });
    assert.equal(missing.ok, false);
    assert.match(missing.detail, /promises `never` in its output[^]*other/);
  },
});

Deno.test("runPoke skips a block whose tool is missing, naming what to install", async () => {
  const [block] = parsePokes(
    `${fence}sh poke\n$ printf 'hi\\n' | nc -N 127.0.0.1 9000\nhi\n${fence}\n`,
    "d.md",
  );
  const shell = fakeShell({});
  const outcome = await runPoke(block, {
    hasTool: (tool) => Promise.resolve(tool !== "nc"),
    ...shell,
  });
  if (Deno.build.os !== "linux") {
    assert.equal(outcome.skipped, true);
    return;
  }
  assert.equal(outcome.ok, true);
  assert.equal(outcome.skipped, true);
  assert.equal(outcome.detail, "skipped: needs nc (apt-get install netcat-openbsd)");
  assert.deepEqual(shell.ran, [], "nothing ran");
});

Deno.test("every lesson doc has runnable pokes, and each block reads cleanly", async () => {
  for (const lesson of lessons) {
    const doc = `docs/${lesson.slug}.md`;
    const blocks = parsePokes(await Deno.readTextFile(`${PROJECT_ROOT}/${doc}`), doc);
    assert(blocks.length > 0, `${doc} has no \`sh poke\` block`);
    for (const block of blocks) {
      assert.equal(block.problem, undefined, `${doc}:${block.line}: ${block.problem}`);
    }
  }
});
