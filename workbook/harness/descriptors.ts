/**
 * How many file descriptors this process has open, for checks that a server
 * gives back what it took: after many clients, or many start/stop cycles,
 * the count must return to its baseline.
 *
 * Deno reads `/proc/self/fd` only with every permission, so the count uses
 * a rule of the kernel instead: `open()` always returns the lowest free
 * descriptor. Opening `/dev/null` until the number reaches `limit` fills
 * every gap below it; the gaps filled are the free descriptors, the rest are
 * open. Grading grants reading `/dev/null` for this.
 *
 * @module
 */
import { closeSync, openSync } from "node:fs";

/**
 * The number of descriptors open below `limit` (default 1024), or undefined
 * where that cannot be measured (no `/dev/null`, no permission, too few
 * descriptors allowed to fill the gaps).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openDescriptors } from "./descriptors.ts";
 *
 * const before = openDescriptors();
 * assert.ok(before !== undefined, "needs read access to /dev/null");
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * assert.equal(openDescriptors(), before + 1);
 * listener.close();
 * assert.equal(openDescriptors(), before);
 * ```
 */
export function openDescriptors(limit = 1024): number | undefined {
  const filled: number[] = [];
  try {
    while (true) {
      const fd = openSync("/dev/null", "r");
      filled.push(fd);
      if (fd >= limit) return limit - (filled.length - 1);
    }
  } catch {
    return undefined;
  } finally {
    for (const fd of filled) closeSync(fd);
  }
}
