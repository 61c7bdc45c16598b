import assert from "node:assert/strict";
import { heapAfterGc } from "./heap.ts";

Deno.test("heapAfterGc is undefined without --expose-gc, a byte count with it", async () => {
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === "function";
  assert.equal(heapAfterGc() === undefined, !hasGc);
  const { stdout, success } = await new Deno.Command("deno", {
    args: [
      "eval",
      "--v8-flags=--expose-gc",
      `import { heapAfterGc } from "${new URL("./heap.ts", import.meta.url)}";
       const before = heapAfterGc();
       let kept = Array.from({ length: 1e5 }, (_, i) => ({ i }));
       const during = heapAfterGc();
       kept = [];
       const after = heapAfterGc();
       console.log(JSON.stringify({ before, during, after, n: kept.length }));`,
    ],
  }).output();
  assert.ok(success);
  const { before, during, after } = JSON.parse(new TextDecoder().decode(stdout));
  assert.ok(during - before > 2_000_000, "100k live objects show in the heap");
  assert.ok(after - before < 1_000_000, "and are gone once nothing holds them");
});
