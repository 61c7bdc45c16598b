import assert from "node:assert/strict";
import { TypedInput } from "./typed_input.ts";

Deno.test("TypedInput gives typed lines in order, then ends", async () => {
  const input = new TypedInput();
  input.type("a");
  const it = input[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { value: "a", done: false });
  const pending = it.next();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(input.waiting, true);
  input.type("b");
  assert.deepEqual(await pending, { value: "b", done: false });
  input.end();
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  assert.equal(input.reads, 3);
});

Deno.test("TypedInput: return() waits behind a pending next(), as stdin's iterator does", async () => {
  const input = new TypedInput();
  const it = input[Symbol.asyncIterator]();
  const pending = it.next();
  let returned = false;
  const closing = it.return!().then(() => returned = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(input.returned, true);
  assert.equal(returned, false, "return() settled while a read was still pending");
  input.type("late");
  assert.deepEqual(await pending, { value: "late", done: false });
  await closing;
  assert.equal(input.released, true);
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

Deno.test("TypedInput: return() with no read pending settles at once", async () => {
  const input = new TypedInput();
  const it = input[Symbol.asyncIterator]();
  assert.deepEqual(await it.return!(), { value: undefined, done: true });
  assert.equal(input.released, true);
});
