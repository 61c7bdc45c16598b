/**
 * `select(2)` and its `fd_set`: the oldest way to wait on several
 * descriptors, limited to fds 0..1023 by the fixed size of the bitmap.
 *
 * @module
 */
import { EINTR, ErrnoError } from "./errno.ts";
import { sys } from "./sys.ts";
import { deadlineAfter, remainingTimeout } from "./timeout.ts";

/**
 * Bits in an `fd_set`: `select` can't watch descriptors >= this (glibc's size
 * for the type, not a kernel limit).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FD_SETSIZE, select } from "workbook/libc";
 *
 * assert.equal(FD_SETSIZE, 1024);
 * assert.throws(() => select([FD_SETSIZE], [], 0), RangeError);
 * ```
 */
export const FD_SETSIZE = 1024;

/**
 * `sizeof(fd_set)`: 1024 bits as sixteen 64-bit `long` words, 128 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FD_SET_BYTES, FdSet } from "workbook/libc";
 *
 * assert.equal(new FdSet().bytes.byteLength, FD_SET_BYTES);
 * ```
 */
export const FD_SET_BYTES = FD_SETSIZE / 8;

/**
 * `sizeof(struct timeval)`: 64-bit seconds and microseconds, `select`'s
 * timeout argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sys, TIMEVAL_SIZE } from "workbook/libc";
 *
 * const timeout = new BigInt64Array(TIMEVAL_SIZE / 8); // { tv_sec: 0, tv_usec: 0 }: just look
 * const r = sys.select(0, null, null, null, new Uint8Array(timeout.buffer));
 * assert.deepEqual(r, { value: 0, errno: 0 });
 * ```
 */
export const TIMEVAL_SIZE = 16;

function checkSelectable(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0 || fd >= FD_SETSIZE) {
    throw new RangeError(
      `select() cannot watch fd ${fd}: an fd_set is a fixed bitmap of FD_SETSIZE=${FD_SETSIZE} ` +
        `bits (fds 0..${FD_SETSIZE - 1}); FD_SET on a larger fd writes past it (undefined ` +
        `behaviour in glibc). Use poll() or epoll for descriptors >= ${FD_SETSIZE}.`,
    );
  }
}

/**
 * A `fd_set`: FD_SETSIZE (1024) bits stored as sixteen 64-bit `long` words;
 * fd `n` is bit `n % 64` of word `n / 64`. On little-endian CPUs that is also
 * bit `n % 8` of byte `n / 8`. Refuses fds outside 0..1023 with a RangeError.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FdSet } from "workbook/libc";
 *
 * const set = new FdSet();
 * set.add(65); // word 1, bit 1
 * assert.ok(set.has(65) && !set.has(64));
 * assert.equal(set.bytes[8], 0b10);
 * set.clear();
 * assert.ok(!set.has(65));
 * assert.throws(() => set.add(1024), RangeError);
 * ```
 */
export class FdSet {
  /** The 128 bytes handed to `select`. */
  readonly bytes: Uint8Array = new Uint8Array(FD_SET_BYTES);
  // 64-bit words as pairs of 32-bit halves (little-endian: low half first),
  // to avoid BigInt arithmetic.
  readonly #halves = new Uint32Array(this.bytes.buffer);

  /** Sets the bit for `fd` (`FD_SET`). */
  add(fd: number): void {
    checkSelectable(fd);
    const word = fd >>> 6, bit = fd & 63;
    this.#halves[word * 2 + (bit >>> 5)] |= 1 << (bit & 31);
  }

  /** Whether the bit for `fd` is set (`FD_ISSET`). */
  has(fd: number): boolean {
    checkSelectable(fd);
    const word = fd >>> 6, bit = fd & 63;
    return (this.#halves[word * 2 + (bit >>> 5)] & (1 << (bit & 31))) !== 0;
  }

  /** Clears every bit (`FD_ZERO`). */
  clear(): void {
    this.#halves.fill(0);
  }
}

/**
 * Which of the watched descriptors {@linkcode select} found ready.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, select, type SelectResult, socketPair, write } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * write(left, new Uint8Array([1]));
 * const ready: SelectResult = select([right], [], 0);
 * assert.deepEqual(ready.readable, [right]);
 * close(left);
 * close(right);
 * ```
 */
export interface SelectResult {
  /** Readable fds (data, EOF, or a pending connection). */
  readable: number[];
  /** Writable fds. */
  writable: number[];
}

const selectReadSet = new FdSet();
const selectWriteSet = new FdSet();
const timevalScratch = new BigInt64Array(TIMEVAL_SIZE / 8);
const timevalBytes = new Uint8Array(timevalScratch.buffer);

/**
 * `select` over read and write sets, waiting up to `timeoutMs` (negative =
 * forever), blocking the JS thread. Throws a RangeError naming FD_SETSIZE
 * for any fd outside 0..1023 — checked before any bit is set, because glibc's
 * FD_SET past the 1024-bit bitmap is a buffer overflow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, select, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * assert.deepEqual(select([right], [left], 100), { readable: [], writable: [left] });
 * close(left);
 * close(right);
 * ```
 */
export function select(
  readFds: readonly number[],
  writeFds: readonly number[],
  timeoutMs: number,
): SelectResult {
  for (const fd of readFds) checkSelectable(fd);
  for (const fd of writeFds) checkSelectable(fd);
  const nfds = Math.max(-1, ...readFds, ...writeFds) + 1;
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    // Rebuilt on every try: select overwrites the sets and the timeval.
    selectReadSet.clear();
    selectWriteSet.clear();
    for (const fd of readFds) selectReadSet.add(fd);
    for (const fd of writeFds) selectWriteSet.add(fd);
    const remaining = remainingTimeout(deadline);
    let timeout: Uint8Array | null = null;
    if (remaining >= 0) {
      timevalScratch[0] = BigInt(Math.floor(remaining / 1000)); // tv_sec
      timevalScratch[1] = BigInt((remaining % 1000) * 1000); // tv_usec
      timeout = timevalBytes;
    }
    const r = sys.select(
      nfds,
      readFds.length > 0 ? selectReadSet.bytes : null,
      writeFds.length > 0 ? selectWriteSet.bytes : null,
      null,
      timeout,
    );
    if (r.value !== -1) {
      return {
        readable: readFds.filter((fd) => selectReadSet.has(fd)),
        writable: writeFds.filter((fd) => selectWriteSet.has(fd)),
      };
    }
    if (r.errno !== EINTR) throw new ErrnoError("select", r.errno);
  }
}
