/**
 * The heap in use after a full garbage collection, for checks that
 * per-connection state is released: serve N clients one after another, and
 * the heap after the last must not have grown by anything like N clients'
 * worth. The runner starts suites with `--v8-flags=--expose-gc`; without it
 * (plain `deno test`) the measure is unavailable and such checks skip it.
 *
 * @module
 */

/**
 * Bytes of heap in use right after a full collection, or undefined without `--expose-gc`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapAfterGc } from "./heap.ts";
 *
 * const heap = heapAfterGc();
 * // Plain `deno test`: no gc(), no measure. Under the runner: a positive byte count.
 * assert.ok(heap === undefined || heap > 0);
 * ```
 */
export function heapAfterGc(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return undefined;
  gc();
  gc(); // a second pass frees what the first one's finalizers let go
  return Deno.memoryUsage().heapUsed;
}
