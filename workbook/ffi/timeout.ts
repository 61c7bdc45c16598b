/**
 * Timeouts for the waiting calls (`poll`, `select`, `epoll_wait`): a wait
 * interrupted by a signal (EINTR) resumes with the time that is left, so the
 * wrappers turn a timeout into a deadline once and ask for what remains.
 *
 * @module
 */

/**
 * The C timeout argument for `timeoutMs`: a whole number of milliseconds that
 * fits an `int`, or -1 (wait forever) for negative, NaN or Infinity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toTimeoutArgument } from "./timeout.ts";
 *
 * assert.deepEqual([1.2, 0, -5, Infinity].map(toTimeoutArgument), [2, 0, -1, -1]);
 * ```
 */
export function toTimeoutArgument(timeoutMs: number): number {
  if (timeoutMs < 0 || timeoutMs === Infinity || Number.isNaN(timeoutMs)) return -1;
  return Math.min(Math.ceil(timeoutMs), 0x7fff_ffff);
}

/**
 * The `performance.now()` at which a wait of `timeoutMs` ends; Infinity for
 * "forever" (see {@linkcode toTimeoutArgument}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deadlineAfter } from "./timeout.ts";
 *
 * assert.equal(deadlineAfter(-1), Infinity);
 * assert.ok(deadlineAfter(100) > performance.now());
 * ```
 */
export function deadlineAfter(timeoutMs: number): number {
  return toTimeoutArgument(timeoutMs) < 0 ? Infinity : performance.now() + timeoutMs;
}

/**
 * Milliseconds left until `deadline` as a timeout argument: -1 for an
 * Infinity deadline, 0 once it has passed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { remainingTimeout } from "./timeout.ts";
 *
 * assert.equal(remainingTimeout(Infinity), -1);
 * assert.equal(remainingTimeout(performance.now() - 10), 0);
 * ```
 */
export function remainingTimeout(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, Math.ceil(deadline - performance.now()));
}
