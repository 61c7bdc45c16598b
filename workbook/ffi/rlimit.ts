/**
 * Resource limits (`getrlimit`/`setrlimit`), for the one the socket lessons
 * run into: how many descriptors a process may have open (`RLIMIT_NOFILE`,
 * `ulimit -n`). Past it, `accept`, `socket` and `pipe` fail with EMFILE.
 *
 * @module
 */
import { check } from "./errno.ts";
import { sys } from "./sys.ts";

/** `getrlimit`/`setrlimit` resource: max open descriptors (7 on x86_64 and aarch64). */
export const RLIMIT_NOFILE = 7;
/** The "no limit" value of `rlim_t` (all 64 bits set); shown as Infinity here. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/**
 * A resource limit: the soft one applies, the hard one caps the soft one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getrlimit, type ResourceLimit } from "workbook/libc";
 *
 * const limit: ResourceLimit = getrlimit();
 * assert.ok(limit.soft <= limit.hard);
 * ```
 */
export interface ResourceLimit {
  /** Current limit; Infinity for RLIM_INFINITY. */
  soft: number;
  /** Ceiling an unprivileged process may raise `soft` to; Infinity for RLIM_INFINITY. */
  hard: number;
}

const limitScratch = new BigUint64Array(2);

function fromRlim(value: bigint): number {
  return value === RLIM_INFINITY ? Infinity : Number(value);
}

function toRlim(value: number): bigint {
  return value === Infinity ? RLIM_INFINITY : BigInt(value);
}

/**
 * `getrlimit`, by default for RLIMIT_NOFILE (how many descriptors this process
 * may have open).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getrlimit } from "workbook/libc";
 *
 * const { soft, hard } = getrlimit();
 * assert.ok(soft > 3, "room for more than stdin, stdout and stderr");
 * assert.ok(soft <= hard);
 * ```
 */
export function getrlimit(resource = RLIMIT_NOFILE): ResourceLimit {
  check("getrlimit", sys.getrlimit(resource, limitScratch));
  return { soft: fromRlim(limitScratch[0]), hard: fromRlim(limitScratch[1]) };
}

/**
 * `setrlimit`. Anyone may lower limits or raise `soft` up to `hard`; raising
 * `hard` needs privileges (EPERM).
 *
 * @example Lower the soft limit for a while, then put it back
 * ```ts
 * import assert from "node:assert/strict";
 * import { getrlimit, setrlimit } from "workbook/libc";
 *
 * const before = getrlimit();
 * try {
 *   setrlimit({ soft: 200, hard: before.hard });
 *   assert.equal(getrlimit().soft, 200);
 * } finally {
 *   setrlimit(before);
 * }
 * assert.deepEqual(getrlimit(), before);
 * ```
 */
export function setrlimit(limit: ResourceLimit, resource = RLIMIT_NOFILE): void {
  limitScratch[0] = toRlim(limit.soft);
  limitScratch[1] = toRlim(limit.hard);
  check("setrlimit", sys.setrlimit(resource, limitScratch));
}

/**
 * Raises the soft RLIMIT_NOFILE to the hard limit — e.g. before a benchmark
 * that opens 10 000 connections — and returns the new limits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getrlimit, raiseFileLimit, setrlimit } from "workbook/libc";
 *
 * const before = getrlimit();
 * try {
 *   const raised = raiseFileLimit();
 *   assert.equal(raised.soft, raised.hard);
 * } finally {
 *   setrlimit(before);
 * }
 * ```
 */
export function raiseFileLimit(): ResourceLimit {
  const limit = getrlimit(RLIMIT_NOFILE);
  if (limit.soft < limit.hard) setrlimit({ soft: limit.hard, hard: limit.hard }, RLIMIT_NOFILE);
  return getrlimit(RLIMIT_NOFILE);
}
