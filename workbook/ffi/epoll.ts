/**
 * Linux `epoll(7)`: an interest list kept in the kernel, so a wait costs the
 * number of ready descriptors, not the number watched.
 *
 * {@linkcode epollWait} blocks the JavaScript thread; {@linkcode epollWaitAsync}
 * waits on a Deno FFI worker thread instead.
 *
 * `struct epoll_event` differs between the two supported CPUs: packed to 12
 * bytes on x86_64, 16 bytes (4 bytes padding before `data`) on aarch64; see
 * {@linkcode EPOLL_EVENT_SIZE}.
 *
 * @module
 */
import { check, EINTR, ErrnoError } from "./errno.ts";
import { O_CLOEXEC } from "./descriptors.ts";
import { sys, sysAsync } from "./sys.ts";
import { deadlineAfter, remainingTimeout, toTimeoutArgument } from "./timeout.ts";

const IS_X86_64 = Deno.build.arch === "x86_64";

/**
 * `epoll`: readable (data, EOF, or a connection to accept).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, epollWait, socketPair, write } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * write(left, new Uint8Array([1]));
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: right, events: EPOLLIN }]);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: right, events: EPOLLIN }]); // unread: again
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLLIN = 0x1;

/**
 * `epoll`: writable. Watch it only while there is output queued, or every
 * wait returns at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, EPOLLOUT, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLIN | EPOLLOUT);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: left, events: EPOLLOUT }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLLOUT = 0x4;

/**
 * `epoll`: error pending (always reported, no need to ask).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLERR, epollWait, pipe } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [readEnd, writeEnd] = pipe();
 * epollCtl(epfd, EPOLL_CTL_ADD, writeEnd, 0); // asks for nothing
 * close(readEnd); // nobody can read any more: writing is an error
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: writeEnd, events: EPOLLERR }]);
 * close(writeEnd);
 * close(epfd);
 * ```
 */
export const EPOLLERR = 0x8;

/**
 * `epoll`: hang-up (always reported, no need to ask).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLHUP, epollWait, pipe } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [readEnd, writeEnd] = pipe();
 * epollCtl(epfd, EPOLL_CTL_ADD, readEnd, 0);
 * close(writeEnd);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: readEnd, events: EPOLLHUP }]);
 * close(readEnd);
 * close(epfd);
 * ```
 */
export const EPOLLHUP = 0x10;

/**
 * `epoll`: the peer shut down its writing side (it may still read).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, EPOLLRDHUP, epollWait, shutdown, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN | EPOLLRDHUP);
 * shutdown(left); // SHUT_WR
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: right, events: EPOLLIN | EPOLLRDHUP }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLLRDHUP = 0x2000;

/**
 * `epoll`: edge-triggered — report changes, not states; drain until EAGAIN.
 * (1 << 31, unsigned.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLET, EPOLLIN, epollWait, socketPair, write } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN | EPOLLET);
 * write(left, new Uint8Array([1]));
 * assert.equal(epollWait(epfd, 8, 0).length, 1);
 * assert.deepEqual(epollWait(epfd, 8, 0), []); // no new edge, though the byte is unread
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLLET = 0x80000000;

/**
 * `epoll_ctl`: start watching an fd.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLOUT, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: left, events: EPOLLOUT }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLL_CTL_ADD = 1;

/**
 * `epoll_ctl`: stop watching an fd. (Closing the fd also removes it, once no
 * other descriptor refers to the same open file.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, EPOLL_CTL_DEL, epollCreate, epollCtl, EPOLLOUT, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT);
 * epollCtl(epfd, EPOLL_CTL_DEL, left);
 * assert.deepEqual(epollWait(epfd, 8, 0), []);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLL_CTL_DEL = 2;

/**
 * `epoll_ctl`: change the events watched (and re-arm a oneshot).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, EPOLL_CTL_MOD, epollCreate, epollCtl, EPOLLIN, EPOLLOUT, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLIN);
 * assert.deepEqual(epollWait(epfd, 8, 0), []);
 * epollCtl(epfd, EPOLL_CTL_MOD, left, EPOLLIN | EPOLLOUT);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: left, events: EPOLLOUT }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export const EPOLL_CTL_MOD = 3;

/** `epoll_create1` flag: close on exec. */
export const EPOLL_CLOEXEC: number = O_CLOEXEC;

/**
 * `sizeof(struct epoll_event)`: 12 on x86_64, where glibc and the kernel pack
 * it (`u32 events; u64 data` without padding), 16 on aarch64, where `data` is
 * 8-byte aligned.
 */
export const EPOLL_EVENT_SIZE = IS_X86_64 ? 12 : 16;
/** Byte offset of `data` in `struct epoll_event`: 4 on x86_64, 8 on aarch64. */
export const EPOLL_DATA_OFFSET = IS_X86_64 ? 4 : 8;

/**
 * One ready descriptor from {@linkcode epollWait}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLOUT, type EpollReady, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT);
 * const [ready]: EpollReady[] = epollWait(epfd, 1, 0);
 * assert.equal(ready.fd, left);
 * assert.ok(ready.events & EPOLLOUT);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export interface EpollReady {
  /** The `data` registered with {@linkcode epollCtl} — the fd unless you chose otherwise. */
  fd: number;
  /** What happened: {@linkcode EPOLLIN}, {@linkcode EPOLLOUT}, {@linkcode EPOLLHUP}, ... */
  events: number;
}

/**
 * `epoll_create1`: a new epoll instance (itself a descriptor; close it when done).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, epollCreate, epollWait } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * assert.deepEqual(epollWait(epfd, 8, 0), []); // watches nothing yet
 * close(epfd);
 * ```
 */
export function epollCreate(flags = EPOLL_CLOEXEC): number {
  return check("epoll_create1", sys.epoll_create1(flags));
}

const epollCtlScratch = new Uint8Array(EPOLL_EVENT_SIZE);
const epollCtlView = new DataView(epollCtlScratch.buffer);

/**
 * `epoll_ctl`: add (`EPOLL_CTL_ADD`), change (`EPOLL_CTL_MOD`) or remove
 * (`EPOLL_CTL_DEL`) `fd` in the interest list. `data` (default: the fd, any
 * whole number up to 2^53) comes back as {@linkcode EpollReady.fd}.
 *
 * @example Tag a descriptor with your own number
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLOUT, epollWait, socketPair } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, left, EPOLLOUT, 2 ** 40 + 7);
 * assert.deepEqual(epollWait(epfd, 8, 0), [{ fd: 2 ** 40 + 7, events: EPOLLOUT }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export function epollCtl(epfd: number, op: number, fd: number, events = 0, data = fd): void {
  if (!Number.isSafeInteger(data) || data < 0) {
    throw new RangeError(`epoll data must be a whole number from 0 to 2^53-1, got ${data}`);
  }
  epollCtlView.setUint32(0, events >>> 0, true); // >>> 0: EPOLLET is bit 31
  epollCtlView.setUint32(EPOLL_DATA_OFFSET, data % 2 ** 32, true);
  epollCtlView.setUint32(EPOLL_DATA_OFFSET + 4, Math.floor(data / 2 ** 32), true);
  check("epoll_ctl", sys.epoll_ctl(epfd, op, fd, epollCtlScratch), `epfd ${epfd} fd ${fd}`);
}

let epollScratch = new Uint8Array(EPOLL_EVENT_SIZE * 64);
let epollScratchView = new DataView(epollScratch.buffer);
/** Buffers for threaded waits, reused; each is lent to one wait at a time. */
const idleAsyncEpollBuffers: Uint8Array[] = [];

function decodeEpollEvents(view: DataView, count: number): EpollReady[] {
  const ready = new Array<EpollReady>(count);
  for (let i = 0; i < count; i++) {
    const at = i * EPOLL_EVENT_SIZE;
    ready[i] = {
      fd: view.getUint32(at + EPOLL_DATA_OFFSET, true) +
        view.getUint32(at + EPOLL_DATA_OFFSET + 4, true) * 2 ** 32,
      events: view.getUint32(at, true),
    };
  }
  return ready;
}

function checkMaxEvents(maxEvents: number): void {
  if (!Number.isInteger(maxEvents) || maxEvents < 1) {
    throw new RangeError(`maxEvents must be a whole number >= 1, got ${maxEvents}`);
  }
}

/**
 * `epoll_wait`: up to `maxEvents` ready descriptors, waiting up to `timeoutMs`
 * (-1 = forever, 0 = just look), blocking the JS thread. The event buffer is
 * kept and reused between calls. Interrupted waits (EINTR) resume with the
 * remaining time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, epollWait, socketPair, write } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * assert.deepEqual(epollWait(epfd, 16, 10), []); // timed out
 * write(left, new Uint8Array([1]));
 * assert.deepEqual(epollWait(epfd, 16, 100), [{ fd: right, events: EPOLLIN }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export function epollWait(epfd: number, maxEvents = 64, timeoutMs = -1): EpollReady[] {
  checkMaxEvents(maxEvents);
  if (epollScratch.byteLength < maxEvents * EPOLL_EVENT_SIZE) {
    epollScratch = new Uint8Array(maxEvents * EPOLL_EVENT_SIZE);
    epollScratchView = new DataView(epollScratch.buffer);
  }
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    const r = sys.epoll_wait(epfd, epollScratch, maxEvents, remainingTimeout(deadline));
    if (r.value !== -1) return decodeEpollEvents(epollScratchView, r.value);
    if (r.errno !== EINTR) throw new ErrnoError("epoll_wait", r.errno, `epfd ${epfd}`);
  }
}

/**
 * {@linkcode epollWait} on an FFI worker thread, so the event loop keeps
 * running. Event buffers are pooled, so concurrent waits are safe. A -1 from
 * the thread is re-checked synchronously with timeout 0 to get a true errno
 * (EBADF, EINVAL, ...); if that succeeds, its events are returned instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { close, EPOLL_CTL_ADD, epollCreate, epollCtl, EPOLLIN, epollWaitAsync, socketPair, write } from "workbook/libc";
 *
 * const epfd = epollCreate();
 * const [left, right] = socketPair();
 * epollCtl(epfd, EPOLL_CTL_ADD, right, EPOLLIN);
 * const waiting = epollWaitAsync(epfd, 16, 1000);
 * setTimeout(() => write(left, new Uint8Array([1])), 10); // timers still run meanwhile
 * assert.deepEqual(await waiting, [{ fd: right, events: EPOLLIN }]);
 * for (const fd of [left, right, epfd]) close(fd);
 * ```
 */
export async function epollWaitAsync(
  epfd: number,
  maxEvents = 64,
  timeoutMs = -1,
): Promise<EpollReady[]> {
  checkMaxEvents(maxEvents);
  const size = maxEvents * EPOLL_EVENT_SIZE;
  const index = idleAsyncEpollBuffers.findIndex((candidate) => candidate.byteLength >= size);
  const buffer = index >= 0 ? idleAsyncEpollBuffers.splice(index, 1)[0] : new Uint8Array(size);
  try {
    const count = await sysAsync.epoll_wait(epfd, buffer, maxEvents, toTimeoutArgument(timeoutMs));
    if (count === -1) return epollWait(epfd, maxEvents, 0);
    return decodeEpollEvents(new DataView(buffer.buffer), count);
  } finally {
    idleAsyncEpollBuffers.push(buffer);
  }
}
