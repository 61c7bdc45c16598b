import assert from "node:assert/strict";
import { TypeFirst } from "./type_first.ts";

function recorder() {
  const printed: string[] = [];
  return { printed, line: (text: string) => () => printed.push(text) };
}

Deno.test("TypeFirst: type errors come before passing checks that were known first", () => {
  const { printed, line } = recorder();
  const order = new TypeFirst();
  order.check(true, line("✓ 1"));
  order.check(true, line("✓ 2"));
  assert.deepEqual(printed, [], "passing checks wait for the type check");
  order.typeChecked(line("type error at lessons/03-tcp-server/server.ts:12:5"));
  assert.deepEqual(printed, ["type error at lessons/03-tcp-server/server.ts:12:5", "✓ 1", "✓ 2"]);
  order.check(true, line("✓ 3"));
  assert.deepEqual(printed.at(-1), "✓ 3", "after the type check, checks print at once");
});

Deno.test("TypeFirst: a failing check never waits, and takes the held ones with it, in order", () => {
  const { printed, line } = recorder();
  const order = new TypeFirst();
  order.check(true, line("✓ 1"));
  order.check(false, line("✗ 2"));
  assert.deepEqual(printed, ["✓ 1", "✗ 2"]);
  order.check(true, line("✓ 3"));
  assert.deepEqual(printed, ["✓ 1", "✗ 2", "✓ 3"], "once a failure is shown nothing waits");
  order.typeChecked(line("type errors"));
  assert.deepEqual(printed, ["✓ 1", "✗ 2", "✓ 3", "type errors"]);
});

Deno.test("TypeFirst: a clean type check prints nothing of its own and releases the checks", () => {
  const { printed, line } = recorder();
  const order = new TypeFirst();
  order.check(true, line("✓ 1"));
  order.typeChecked(() => {});
  assert.deepEqual(printed, ["✓ 1"]);
});
