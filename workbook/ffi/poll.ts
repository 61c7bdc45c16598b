/**
 * `poll(2)`: wait until one of several descriptors is ready. Any fd number
 * works (unlike `select`), and the kernel walks the whole list on every call
 * (unlike `epoll`).
 *
 * {@linkcode poll} blocks the JavaScript thread; {@linkcode pollAsync} waits on
 * a Deno FFI worker thread instead, so timers, promises and Deno's own sockets
 * keep running.
 *
 * @module
 */
import { EINTR, ErrnoError } from "./errno.ts";
import { sys, sysAsync } from "./sys.ts";
import { deadlineAfter, remainingTimeout, toTimeoutArgument } from "./timeout.ts";

/**
 * `poll`: there is data to read (or EOF, or a connection to accept).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, poll, POLLIN, socketPair, write } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * assert.deepEqual(poll([{ fd: right, events: POLLIN }], 0), [0]); // nothing yet
 * write(left, new Uint8Array([1]));
 * assert.deepEqual(poll([{ fd: right, events: POLLIN }], 0), [POLLIN]);
 * close(left);
 * close(right);
 * ```
 */
export const POLLIN = 0x1;

/**
 * `poll`: writing will not block (there is room in the send buffer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, poll, POLLOUT, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * assert.deepEqual(poll([{ fd: left, events: POLLOUT }], 0), [POLLOUT]);
 * close(left);
 * close(right);
 * ```
 */
export const POLLOUT = 0x4;

/**
 * `poll` result only: an error is pending (read it with `SO_ERROR` or a
 * failing call). A pipe reports it on the write end once nobody can read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pipe, poll, POLLERR, POLLOUT } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * close(readEnd);
 * assert.ok(poll([{ fd: writeEnd, events: POLLOUT }], 0)[0] & POLLERR);
 * close(writeEnd);
 * ```
 */
export const POLLERR = 0x8;

/**
 * `poll` result only: hung up — both directions closed, the connection reset,
 * or a pipe whose write end is closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pipe, poll, POLLHUP, POLLIN } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * close(writeEnd);
 * assert.ok(poll([{ fd: readEnd, events: POLLIN }], 0)[0] & POLLHUP);
 * close(readEnd);
 * ```
 */
export const POLLHUP = 0x10;

/**
 * `poll` result only: the fd is not open. (Negative fds are skipped instead.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pipe, poll, POLLIN, POLLNVAL } from "workbook/libc";
 *
 * const [readEnd, writeEnd] = pipe();
 * close(readEnd);
 * close(writeEnd);
 * assert.deepEqual(poll([{ fd: readEnd, events: POLLIN }, { fd: -1, events: POLLIN }], 0), [
 *   POLLNVAL,
 *   0,
 * ]);
 * ```
 */
export const POLLNVAL = 0x20;

/**
 * `sizeof(struct pollfd)`: `int fd; short events; short revents;`, for
 * building the array `sys.poll` takes by hand.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, POLLFD_SIZE, POLLOUT, socketPair, sys } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * const pollfds = new Uint8Array(POLLFD_SIZE);
 * const view = new DataView(pollfds.buffer);
 * view.setInt32(0, left, true); // fd
 * view.setInt16(4, POLLOUT, true); // events
 * assert.equal(sys.poll(pollfds, 1, 0).value, 1);
 * assert.equal(view.getInt16(6, true), POLLOUT); // revents
 * close(left);
 * close(right);
 * ```
 */
export const POLLFD_SIZE = 8;

/**
 * One descriptor to watch, and the events to watch for (POLLIN | POLLOUT ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, poll, POLLIN, POLLOUT, type PollRequest, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * const requests: PollRequest[] = [{ fd: left, events: POLLIN | POLLOUT }];
 * assert.deepEqual(poll(requests, 0), [POLLOUT]); // only what happened, of what was asked
 * close(left);
 * close(right);
 * ```
 */
export interface PollRequest {
  /** Descriptor; negative ones are skipped by the kernel (revents 0). */
  fd: number;
  /** Bit mask of {@linkcode POLLIN}, {@linkcode POLLOUT}, ... */
  events: number;
}

let pollScratch = new Uint8Array(POLLFD_SIZE * 16);

function encodePollfds(requests: readonly PollRequest[], into: Uint8Array): DataView {
  const view = new DataView(into.buffer, into.byteOffset, requests.length * POLLFD_SIZE);
  requests.forEach(({ fd, events }, i) => {
    view.setInt32(i * POLLFD_SIZE, fd, true);
    view.setInt16(i * POLLFD_SIZE + 4, events, true);
    view.setInt16(i * POLLFD_SIZE + 6, 0, true);
  });
  return view;
}

function decodeRevents(view: DataView, count: number): number[] {
  const revents = new Array<number>(count);
  for (let i = 0; i < count; i++) revents[i] = view.getUint16(i * POLLFD_SIZE + 6, true);
  return revents;
}

/**
 * `poll`: waits until one of the descriptors is ready or `timeoutMs` passes
 * (-1 = forever, 0 = just look), blocking the JS thread. Returns the `revents`
 * of each request, in order (0 = nothing happened). Unlike select, any fd number
 * works. Interrupted waits (EINTR) resume with the remaining time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, poll, POLLIN, POLLOUT, socketPair } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * const started = performance.now();
 * const revents = poll([{ fd: left, events: POLLOUT }, { fd: right, events: POLLIN }], 100);
 * assert.deepEqual(revents, [POLLOUT, 0]); // left can write; nothing to read on right
 * assert.ok(performance.now() - started < 100); // returned as soon as one was ready
 * close(left);
 * close(right);
 * ```
 */
export function poll(requests: readonly PollRequest[], timeoutMs: number): number[] {
  const bytes = requests.length * POLLFD_SIZE;
  if (pollScratch.byteLength < bytes) pollScratch = new Uint8Array(bytes);
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    const view = encodePollfds(requests, pollScratch);
    const r = sys.poll(pollScratch, requests.length, remainingTimeout(deadline));
    if (r.value !== -1) return decodeRevents(view, requests.length);
    if (r.errno !== EINTR) throw new ErrnoError("poll", r.errno);
  }
}

/**
 * {@linkcode poll} on an FFI worker thread: the event loop keeps running while
 * it waits. A -1 from the thread is re-checked with a synchronous zero-timeout
 * poll, so errors carry the right errno. The wait can't be cancelled and keeps
 * the process alive, so prefer finite timeouts (or watch a pipe you can write
 * to).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, pollAsync, POLLIN, socketPair, write } from "workbook/libc";
 *
 * const [left, right] = socketPair();
 * const waiting = pollAsync([{ fd: right, events: POLLIN }], 1000);
 * setTimeout(() => write(left, new Uint8Array([1])), 10); // timers still run meanwhile
 * assert.deepEqual(await waiting, [POLLIN]);
 * close(left);
 * close(right);
 * ```
 */
export async function pollAsync(
  requests: readonly PollRequest[],
  timeoutMs: number,
): Promise<number[]> {
  // Own buffer: the worker thread writes into it while JS carries on.
  const buffer = new Uint8Array(Math.max(1, requests.length) * POLLFD_SIZE);
  const view = encodePollfds(requests, buffer);
  const count = await sysAsync.poll(buffer, requests.length, toTimeoutArgument(timeoutMs));
  // errno of the worker thread is out of reach: ask again here to learn it.
  if (count === -1) return poll(requests, 0);
  return decodeRevents(view, requests.length);
}
