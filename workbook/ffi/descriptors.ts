/**
 * Descriptors of any kind — sockets, pipes, epoll sets — through libc:
 * `read`, `write`, `close`, `pipe2`, and `fcntl` for O_NONBLOCK and for
 * telling whether a number is still open.
 *
 * The wrappers throw {@linkcode ErrnoError}, except where "not ready yet" is a
 * normal answer on a non-blocking descriptor: {@linkcode read} and
 * {@linkcode write} return `null` for EAGAIN/EWOULDBLOCK. The calls run on the
 * JavaScript thread: a blocking one freezes every timer and promise.
 *
 * @module
 */
import { check, EBADF, EINTR, ErrnoError, isWouldBlock, retryInterrupted } from "./errno.ts";
import { sys, type SysResult } from "./sys.ts";

/**
 * `fcntl`: duplicate to the lowest free fd >= the argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, F_DUPFD, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * const copy = sys.fcntl(readEnd, F_DUPFD, 200).value;
 * assert.ok(copy >= 200);
 * for (const fd of [copy, readEnd, writeEnd]) close(fd);
 * ```
 */
export const F_DUPFD = 0;
/** `fcntl`: read descriptor flags (`FD_CLOEXEC`). */
export const F_GETFD = 1;

/**
 * `fcntl`: read file status flags ({@linkcode O_NONBLOCK}, ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, F_GETFL, O_NONBLOCK, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe({ nonBlocking: true });
 * assert.ok(sys.fcntl(readEnd, F_GETFL).value & O_NONBLOCK);
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export const F_GETFL = 3;

/**
 * `fcntl`: set file status flags. Read them first with {@linkcode F_GETFL}
 * and change one bit, or the others are lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, F_GETFL, F_SETFL, isNonBlocking, O_NONBLOCK, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * const flags = sys.fcntl(readEnd, F_GETFL).value;
 * assert.equal(sys.fcntl(readEnd, F_SETFL, flags | O_NONBLOCK).value, 0);
 * assert.ok(isNonBlocking(readEnd));
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export const F_SETFL = 4;

/**
 * `fcntl`: like {@linkcode F_DUPFD}, with close-on-exec set on the copy. How
 * a test puts a descriptor above 1023, out of `select`'s reach.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, F_DUPFD_CLOEXEC, isFdOpen, pipe, sys } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * const copy = sys.fcntl(readEnd, F_DUPFD_CLOEXEC, 300).value;
 * assert.ok(copy >= 300 && isFdOpen(copy));
 * for (const fd of [copy, readEnd, writeEnd]) close(fd);
 * ```
 */
export const F_DUPFD_CLOEXEC = 1030;

/**
 * Status flag: calls that would wait fail with EAGAIN instead (0o4000). Also
 * the value of `SOCK_NONBLOCK`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { O_NONBLOCK, SOCK_NONBLOCK } from "workbook/libc";
 *
 * assert.equal(O_NONBLOCK, 0o4000);
 * assert.equal(SOCK_NONBLOCK, O_NONBLOCK);
 * ```
 */
export const O_NONBLOCK = 0o4000;
/** Open flag: close on exec (0o2000000); also `pipe2`'s flag. */
export const O_CLOEXEC = 0o2000000;

/**
 * Flags for calls that create descriptors (`pipe`, `socketPair`,
 * `createTcpSocket`, `accept`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, type DescriptorOptions, isNonBlocking, pipe } from "workbook/libc";
 *
 * const options: DescriptorOptions = { nonBlocking: true };
 * const [readEnd, writeEnd] = pipe(options);
 * assert.ok(isNonBlocking(readEnd) && isNonBlocking(writeEnd));
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export interface DescriptorOptions {
  /** Create it non-blocking (`SOCK_NONBLOCK`/`O_NONBLOCK`). Default false. */
  nonBlocking?: boolean;
  /** Close it in child programs started with exec (`SOCK_CLOEXEC`). Default true. */
  closeOnExec?: boolean;
}

/**
 * Turns O_NONBLOCK on or off (`fcntl` F_GETFL, then F_SETFL).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, isNonBlocking, setNonBlocking, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * setNonBlocking(left, true);
 * assert.ok(isNonBlocking(left));
 * setNonBlocking(left, false);
 * assert.ok(!isNonBlocking(left));
 * close(left);
 * close(right);
 * ```
 */
export function setNonBlocking(fd: number, on: boolean): void {
  const flags = check("fcntl", sys.fcntl(fd, F_GETFL), `F_GETFL fd ${fd}`);
  const wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (wanted !== flags) check("fcntl", sys.fcntl(fd, F_SETFL, wanted), `F_SETFL fd ${fd}`);
}

/**
 * Whether O_NONBLOCK is set on the descriptor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, isNonBlocking } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * assert.equal(isNonBlocking(fd), false); // sockets start blocking
 * close(fd);
 * ```
 */
export function isNonBlocking(fd: number): boolean {
  return (check("fcntl", sys.fcntl(fd, F_GETFL), `F_GETFL fd ${fd}`) & O_NONBLOCK) !== 0;
}

/**
 * The shared shape of read/write/send: bytes moved, `null` for EAGAIN, EINTR
 * retried, any other failure thrown as an {@linkcode ErrnoError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { transfer } from "./descriptors.ts";
 *
 * assert.equal(transfer("read", 3, () => ({ value: -1, errno: 11 })), null); // EAGAIN
 * assert.equal(transfer("read", 3, () => ({ value: 5, errno: 0 })), 5);
 * ```
 */
export function transfer(syscall: string, fd: number, call: () => SysResult): number | null {
  const r = retryInterrupted(call);
  if (r.value !== -1) return r.value;
  if (isWouldBlock(r.errno)) return null;
  throw new ErrnoError(syscall, r.errno, `fd ${fd}`);
}

/**
 * `read` into `buffer`: bytes read, `0` at end of stream (the peer closed or
 * shut down writing), `null` if nothing is there yet on a non-blocking fd.
 * On a blocking fd with no data it waits, freezing the JS thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, read, socketPair, write } from "workbook/libc";
 *
 * const [left, right] = socketPair({ nonBlocking: true });
 * const buffer = new Uint8Array(64);
 * assert.equal(read(right, buffer), null); // nothing sent yet
 * write(left, new TextEncoder().encode("ping"));
 * assert.equal(read(right, buffer), 4);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, 4)), "ping");
 * close(left);
 * assert.equal(read(right, buffer), 0); // EOF
 * close(right);
 * ```
 */
export function read(fd: number, buffer: Uint8Array): number | null {
  return transfer("read", fd, () => sys.read(fd, buffer));
}

/**
 * `write` from `buffer`: bytes written (possibly fewer than asked), `null` if
 * the fd is non-blocking and full. For sockets prefer `send`: a `write` to a
 * broken connection raises SIGPIPE unless it is ignored (Deno ignores it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pipe, read, write } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * assert.equal(write(writeEnd, new Uint8Array([1, 2, 3])), 3);
 * assert.equal(read(readEnd, new Uint8Array(8)), 3);
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export function write(fd: number, buffer: Uint8Array): number | null {
  return transfer("write", fd, () => sys.write(fd, buffer));
}

/**
 * `close`. Not retried on EINTR: Linux frees the fd number even then, and a
 * retry could close a descriptor someone else just got. Other failures
 * (EBADF: not open) throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, createTcpSocket, ErrnoError, isFdOpen } from "workbook/libc";
 *
 * const fd = createTcpSocket();
 * close(fd);
 * assert.equal(isFdOpen(fd), false);
 * assert.throws(() => close(fd), ErrnoError); // EBADF: closed already
 * ```
 */
export function close(fd: number): void {
  const r = sys.close(fd);
  if (r.value === -1 && r.errno !== EINTR) throw new ErrnoError("close", r.errno, `fd ${fd}`);
}

/**
 * True while `fd` names an open descriptor of this process: `fcntl(F_GETFD)`
 * fails with `EBADF` on anything else. How a grader sees that learner code
 * closed (or leaked) a raw descriptor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, isFdOpen, pipe } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * close(readEnd);
 * assert.deepEqual([isFdOpen(readEnd), isFdOpen(writeEnd)], [false, true]);
 * close(writeEnd);
 * ```
 */
export function isFdOpen(fd: number): boolean {
  return sys.fcntl(fd, F_GETFD).errno !== EBADF;
}

const pairScratch = new Int32Array(2);

/**
 * `pipe2`: a one-way channel, `[readEnd, writeEnd]`. Cheap idle descriptors
 * for benchmarks, and a wake-up channel for a thread stuck in `poll`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pipe, read, write } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe({ nonBlocking: true });
 * assert.equal(read(readEnd, new Uint8Array(1)), null); // empty
 * write(writeEnd, new Uint8Array([9]));
 * assert.equal(read(readEnd, new Uint8Array(1)), 1);
 * close(readEnd);
 * close(writeEnd);
 * ```
 */
export function pipe(options: DescriptorOptions = {}): [readEnd: number, writeEnd: number] {
  const flags = (options.nonBlocking ? O_NONBLOCK : 0) |
    (options.closeOnExec === false ? 0 : O_CLOEXEC);
  check("pipe2", sys.pipe2(pairScratch, flags));
  return [pairScratch[0], pairScratch[1]];
}
