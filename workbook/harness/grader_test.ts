import assert from "node:assert/strict";
import { getLesson } from "../catalogue.ts";
import { TodoError } from "../toolkit/todo.ts";
import { addNote, GradeFailure } from "./failure.ts";
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

Deno.test("expectError without a name passes any error, and fails when nothing is thrown", async () => {
  const t = new Grader(lesson, "engine test");
  const error = await t.expectError("listen twice", () => {
    throw new Error("in use");
  });
  assert.equal(error.message, "in use");
  const thrownText = await t.expectError<unknown>("reject with a string", () => {
    return Promise.reject("just text");
  }, { message: "text" });
  assert.equal(thrownText, "just text");
  const failure = await t.expectError("listen twice", () => 42, {
    what: "a RangeError: 42 is out of range",
    note: "throw it",
  }).then(() => undefined, (e) => e);
  assert.match(
    failure.message,
    /expected: a RangeError: 42 is out of range\nactual: {3}it returned normally, without an error\nnote: throw it/,
  );
  const hung = await t.expectError("hang", () => new Promise(() => {}), {
    what: "an error at once",
  }).then(() => undefined, (e) => e);
  assert.equal(hung.details.kind, "timeout");
  assert.match(hung.message, /expected: an error at once/);
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

Deno.test("expectError checks the class and the message, and shows what came back instead", async () => {
  const t = new Grader(lesson, "engine test");
  class AddressInUseError extends Error {
    override name = "AddressInUseError";
  }
  const error = await t.expectError("listen twice", () => {
    throw new AddressInUseError("127.0.0.1:4000 is taken");
  }, { name: "AddressInUseError", message: "127.0.0.1:4000" });
  assert.equal(error.message, "127.0.0.1:4000 is taken");

  const wrongClass = await t.expectError("listen twice", () => {
    throw new Error("taken");
  }, { name: "AddressInUseError" }).then(() => undefined, (e) => e);
  assert.match(wrongClass.message, /expected: an AddressInUseError\nactual: {3}your code threw/);

  const wrongMessage = await t.expectError("listen twice", () => {
    throw new AddressInUseError("taken");
  }, { name: "AddressInUseError", message: /\d+\.\d+/ }).then(() => undefined, (e) => e);
  assert.match(wrongMessage.message, /the error's message\nexpected: a message that matches/);

  const returned = await t.expectError("read it", () => new Uint8Array([104, 105]), {
    name: "ReplyTooLongError",
    note: "count the bytes as they come",
  }).then(() => undefined, (e) => e);
  assert.match(returned.message, /actual: {3}it returned "hi", without an error/);
  assert.match(returned.message, /note: count the bytes as they come/);
  await t.cleanup();
});

Deno.test("eventually waits for a condition, and names it when the deadline passes", async () => {
  const t = new Grader(lesson, "engine test");
  let ready = false;
  setTimeout(() => ready = true, 10);
  await t.eventually("the flag", () => ready, { expected: "the flag set", actual: () => "unset" });
  const late = await t.eventually("the other flag", () => false, {
    expected: "the other flag set",
    actual: () => "still unset",
    timeoutMs: 20,
  }).then(() => undefined, (e) => e);
  assert.ok(late instanceof GradeFailure);
  assert.equal(late.details.kind, "timeout");
  assert.match(late.message, /expected: the other flag set within 20 ms\nactual: {3}still unset/);
  await t.cleanup();
});

Deno.test("addNote adds advice to a failure, but never to 'not implemented yet'", () => {
  const failing = () => new GradeFailure({ kind: "mismatch", step: "s", note: "a" });
  const kept = addNote(failing(), { note: "b" }) as GradeFailure;
  assert.equal(kept.details.note, "a");
  const after = addNote(failing(), { note: "b", notePlacement: "after" }) as GradeFailure;
  assert.equal(after.details.note, "a. b");
  assert.match(after.message, /note: a\. b/);
  const before = addNote(failing(), { note: "b", notePlacement: "before" }) as GradeFailure;
  assert.equal(before.details.note, "b. a");
  const none = addNote(new GradeFailure({ kind: "timeout", step: "s" }), { note: "b" });
  assert.equal((none as GradeFailure).details.note, "b");
  const todo = new GradeFailure({
    kind: "todo",
    step: "s",
    note: "lesson 01: x is not implemented",
  });
  assert.equal((addNote(todo, { note: "b" }) as GradeFailure).message, todo.message);
  assert.equal(todo.message, "lesson 01: x is not implemented");
  const plain = new Error("not a grade failure");
  assert.equal(addNote(plain, { note: "b" }), plain);
  assert.equal(plain.message, "not a grade failure");
});

Deno.test("the note option reaches the failure of each call, and t.noted covers a block", async () => {
  const t = new Grader(lesson, "engine test");
  const server = replyServer("HEL");
  try {
    const step = await t.step("wait", () => new Promise(() => {}), {
      timeoutMs: 10,
      note: "does it ever return?",
    }).then(() => undefined, (e) => e);
    assert.match(step.message, /note: does it ever return\?/);

    const todo = await t.step("call it", () => {
      throw new TodoError("formatAddress");
    }, { note: "never shown" }).then(() => undefined, (e) => e);
    assert.doesNotMatch(todo.message, /never shown/);

    const client = await t.connect(server.addr, "A");
    const expect = await client.expect("HELLO\n", { note: "one reply per line" })
      .then(() => undefined, (e) => e);
    assert.match(expect.message, /note: one reply per line/);
    const end = await client.expectEnd({ note: "no more bytes" }).then(() => undefined, (e) => e);
    assert.match(end.message, /note: no more bytes/);

    const error = await t.expectError("return", () => 7, { name: "RangeError", note: "throw" })
      .then(() => undefined, (e) => e);
    assert.match(error.message, /note: throw/);

    const eventually = await t.eventually("the flag", () => false, {
      expected: "the flag set",
      actual: () => "unset",
      timeoutMs: 10,
      note: "set the flag",
      notePlacement: "after",
    }).then(() => undefined, (e) => e);
    assert.match(eventually.message, /note: set the flag/);

    const block = await t.noted("the whole block", async () => {
      await t.step("first", () => 1);
      t.check(false, { step: "second", expected: "true", actual: "false", note: "own" });
    }, "before").then(() => undefined, (e) => e);
    assert.match(block.message, /step: second[\s\S]*note: the whole block\. own/);
  } finally {
    await t.cleanup();
    await server.close();
  }
});

Deno.test("background work that fails or ends early fails the awaited step at once", async () => {
  const t = new Grader(lesson, "engine test");
  let crash!: (error: Error) => void;
  t.background("your server's loop", new Promise((_, reject) => crash = reject));
  setTimeout(() => crash(new RangeError("fd 1024 is past FD_SETSIZE")), 5);
  const started = performance.now();
  const failure = await t.step("wait for a reply", () => new Promise(() => {}), {
    timeoutMs: 5000,
  }).then(() => undefined, (e) => e);
  assert.ok(performance.now() - started < 2000, "the step ended long before its deadline");
  assert.ok(failure instanceof GradeFailure);
  assert.match(failure.message, /step: your server's loop/);
  assert.match(failure.message, /your code threw RangeError: fd 1024 is past FD_SETSIZE/);
  assert.equal(await t.cleanup(), undefined);

  const early = new Grader(lesson, "engine test");
  early.background("your server's loop", Promise.resolve());
  const ended = await early.step("wait", () => new Promise(() => {}), { timeoutMs: 5000 })
    .then(() => undefined, (e) => e);
  assert.match(ended.message, /expected: it to keep running until the check is over/);
  assert.match(ended.message, /actual: {3}it ended by itself/);
  await early.cleanup();
});

Deno.test("background: onEnd decides which endings are failures", async () => {
  const t = new Grader(lesson, "engine test");
  let closing = false;
  let end!: () => void;
  const seen: unknown[] = [];
  t.background("your server's loop", new Promise<void>((resolve) => end = resolve), {
    onEnd: (outcome) => {
      seen.push(outcome);
      return closing ? undefined : new GradeFailure({ kind: "mismatch", step: "early" });
    },
  });
  closing = true;
  end();
  await t.step("a step after the loop ended as expected", () => 7);
  await new Promise((resolve) => setTimeout(resolve, 0));
  t.throwIfInterrupted(); // nothing failed
  assert.deepEqual(seen, [{ value: undefined }]);
  assert.equal(await t.cleanup(), undefined);
});

Deno.test("background: clean-up waits for the work after the deferred clean-ups, within a bound", async () => {
  const t = new Grader(lesson, "engine test");
  let stop!: () => void;
  const loop = new Promise<void>((resolve) => stop = resolve).then(
    () => new Promise<void>((resolve) => setTimeout(resolve, 20)), // winds down after close()
  );
  let ended = false;
  t.background("your server's loop", loop.then(() => ended = true));
  t.defer(() => stop()); // "server.close()": asks the loop to end, does not wait for it
  assert.equal(await t.cleanup(), undefined);
  assert.ok(ended, "cleanup returned only after the loop had ended");

  const stuck = new Grader(lesson, "engine test");
  stuck.background("your server's loop", new Promise(() => {}), { settleMs: 30 });
  const failure = await stuck.cleanup();
  assert.ok(failure instanceof GradeFailure);
  assert.equal(failure.details.kind, "timeout");
  assert.match(failure.message, /step: your server's loop, after the check/);
  assert.match(failure.message, /it was still running/);
});
