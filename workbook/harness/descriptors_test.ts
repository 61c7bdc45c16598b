import assert from "node:assert/strict";
import { openDescriptors } from "./descriptors.ts";

Deno.test("openDescriptors counts listeners while they are open, and not after", () => {
  const before = openDescriptors();
  assert.equal(typeof before, "number");
  const first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const second = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.equal(openDescriptors(), before! + 2);
  first.close(); // leaves a gap below the second: still counted right
  assert.equal(openDescriptors(), before! + 1);
  second.close();
  assert.equal(openDescriptors(), before);
});

Deno.test("openDescriptors below a limit the process already fills counts every one", () => {
  assert.equal(openDescriptors(3), 3); // stdin, stdout and stderr
});
