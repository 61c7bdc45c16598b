import assert from "node:assert/strict";
import { getLesson } from "../catalogue.ts";
import { TodoError } from "../toolkit/todo.ts";
import { GradeFailure } from "./failure.ts";
import { Grader } from "./grader.ts";

const lesson = getLesson("01");

/** A tiny loopback server that answers each connection with `reply`, then closes. */
function replyServer(reply: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode(reply));
    conn.close();
  })();
  return {
    addr: listener.addr,
    async close() {
      await served;
      listener.close();
    },
  };
}

Deno.test("a wrong reply fails with a caret under the first wrong byte and a transcript", async () => {
  const t = new Grader(lesson, "engine test");
  const server = replyServer("HELXO\n");
  try {
    const client = await t.connect(server.addr, "A");
    await client.send("hello\n");
    const failure = await client.expect("HELLO\n").then(() => undefined, (e) => e);
    assert.ok(failure instanceof GradeFailure);
    failure.attach(t.transcript, "docs/01-sockets.md");
    const lines = failure.message.split("\n");
    const actual = lines.find((l) => l.startsWith("actual:"))!;
    const caret = lines.find((l) => l.includes("^"))!;
    assert.equal(caret.indexOf("^"), actual.indexOf("X"));
    assert.match(failure.message, /→ 6 bytes\s+"hello\\n"/);
    assert.match(failure.message, /← 6 bytes\s+"HELXO\\n"/);
    assert.match(failure.message, /read: docs\/01-sockets\.md/);
  } finally {
    await t.cleanup();
    await server.close();
  }
});

Deno.test("a reply cut short by EOF says how many bytes arrived", async () => {
  const t = new Grader(lesson, "engine test");
  const server = replyServer("HEL");
  try {
    const client = await t.connect(server.addr, "A");
    const failure = await client.expect("HELLO\n").then(() => undefined, (e) => e);
    assert.ok(failure instanceof GradeFailure);
    assert.match(failure.message, /your side had sent 3 byte\(s\) in all/);
    assert.match(failure.message, /closed its sending side \(EOF\)/);
  } finally {
    await t.cleanup();
    await server.close();
  }
});

Deno.test("step turns TodoError, throws and hangs into learner messages", async () => {
  const t = new Grader(lesson, "engine test");
  const todo = await t.step("call it", () => {
    throw new TodoError("formatAddress");
  }).then(() => undefined, (e) => e);
  assert.match(
    todo.message,
    /^lesson 01: formatAddress is not implemented yet — see docs\/01-sockets\.md$/,
  );

  const threw = await t.step("call it", () => {
    throw new RangeError("port out of range");
  }).then(() => undefined, (e) => e);
  assert.match(
    threw.message,
    /step: call it\nactual: {3}your code threw RangeError: port out of range/,
  );

  const hung = await t.step("wait", () => new Promise(() => {}), { timeoutMs: 20 })
    .then(() => undefined, (e) => e);
  assert.match(hung.message, /expected: your code to finish within 20 ms/);
  assert.match(hung.message, /still running/);
  await t.cleanup();
});

Deno.test("expectThrows returns the learner's error and fails when nothing is thrown", async () => {
  const t = new Grader(lesson, "engine test");
  const error = await t.expectThrows("listen twice", () => {
    throw new Error("in use");
  }, "an error");
  assert.equal((error as Error).message, "in use");
  const failure = await t.expectThrows("listen twice", () => 42, "an error")
    .then(() => undefined, (e) => e);
  assert.match(failure.message, /it returned normally, without an error/);
  await t.cleanup();
});

Deno.test("a resettable probe talks, then resets: the peer sees ECONNRESET", async () => {
  const t = new Grader(lesson, "engine test");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept();
    const client = await t.connect(listener.addr, "A", { resettable: true });
    const server = await accepted;
    await server.write(new TextEncoder().encode("welcome\n"));
    await client.expect("welcome\n");
    await client.send("bye\n");
    const buffer = new Uint8Array(16);
    assert.equal(await server.read(buffer), 4);
    await client.reset();
    await assert.rejects(() => server.read(buffer), Deno.errors.ConnectionReset);
    server.close();
    assert.match(t.transcript.format(), /→ RST \(grader reset the connection on purpose\)/);
  } finally {
    await t.cleanup();
    listener.close();
  }
});
