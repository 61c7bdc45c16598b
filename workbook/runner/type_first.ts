/**
 * The order a grading prints in while the type check runs beside the suite:
 * passing checks wait until the type check is done, so its errors come
 * first; a failing check never waits (the first failure is what the learner
 * needs soonest), and once one is shown, nothing waits any more.
 *
 * @module
 */

/**
 * Holds passing checks' lines until the type check is done or a check fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TypeFirst } from "./type_first.ts";
 *
 * const printed = new Array<string>();
 * const order = new TypeFirst();
 * order.check(true, () => printed.push("✓ a"));
 * assert.equal(printed.length, 0);
 * order.typeChecked(() => printed.push("type errors"));
 * assert.deepEqual(printed, ["type errors", "✓ a"]);
 * ```
 */
export class TypeFirst {
  #done = false;
  #failed = false;
  readonly #held: (() => void)[] = [];

  /** Shows a check's verdict (`show` prints it): at once, or once the type check is done. */
  check(ok: boolean, show: () => void): void {
    if (ok && !this.#done && !this.#failed) {
      this.#held.push(show);
      return;
    }
    if (!ok) this.#failed = true;
    this.#flush();
    show();
  }

  /** The type check is done: `show` prints what it found, then the held checks follow. */
  typeChecked(show: () => void): void {
    this.#done = true;
    show();
    this.#flush();
  }

  #flush(): void {
    for (const show of this.#held.splice(0)) show();
  }
}
