/**
 * Helpers shared by the tests of the libc bindings (`*_test.ts` beside this
 * file): a per-test descriptor scope, FFI-gated tests, and readiness waits.
 *
 * Synchronisation is always "wait for readiness with poll and a timeout",
 * never a fixed sleep. Ports come from port 0 + getsockname.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  accept,
  close,
  connectTcp,
  ErrnoError,
  type FfiAvailability,
  ffiAvailable,
  type Listener,
  listenTcp,
  poll,
  POLLIN,
  sys,
} from "./libc.ts";

/** Whether FFI works here; asked once, at import, outside any test. */
export const ffi: FfiAvailability = ffiAvailable();
if (!ffi.ok) console.warn(`libc FFI tests skipped: ${ffi.reason}`);

/** Upper bound for every readiness wait; only reached when something is broken. */
export const WAIT_MS = 5000;

/** Descriptors opened by one test, closed when it ends (pass or fail). */
export class FdScope {
  readonly #open = new Set<number>();

  /** Remembers `fd` for closing at the end of the test, and returns it. */
  track(fd: number): number {
    this.#open.add(fd);
    return fd;
  }

  /** Closes `fd` now (throwing if that fails) and forgets it. */
  close(fd: number): void {
    this.#open.delete(fd);
    close(fd);
  }

  /** Closes every descriptor still tracked, ignoring errors. */
  closeAll(): void {
    for (const fd of this.#open) sys.close(fd);
    this.#open.clear();
  }
}

/** A test that needs FFI (skipped where it is missing), with a descriptor scope. */
export function ffiTest(name: string, fn: (fds: FdScope) => void | Promise<void>): void {
  Deno.test({
    name,
    ignore: !ffi.ok,
    async fn() {
      const fds = new FdScope();
      try {
        await fn(fds);
      } finally {
        fds.closeAll();
      }
    },
  });
}

/** Waits (sync poll) until `fd` reports one of `events`; fails after WAIT_MS. */
export function waitFor(fd: number, events: number): number {
  const [revents] = poll([{ fd, events }], WAIT_MS);
  assert.notEqual(revents, 0, `fd ${fd} not ready for ${events} within ${WAIT_MS} ms`);
  return revents;
}

/** A loopback listener plus one connection: `client` (connected) and `server` (accepted). */
export function connectedPair(
  fds: FdScope,
  serverOptions: { nonBlocking?: boolean } = {},
): { listener: Listener; client: number; server: number } {
  const listener = listenTcp();
  fds.track(listener.fd);
  const client = fds.track(connectTcp("127.0.0.1", listener.port));
  waitFor(listener.fd, POLLIN);
  const server = fds.track(accept(listener.fd, serverOptions)!);
  return { listener, client, server };
}

/** An `assert.throws` matcher for an ErrnoError with this code. */
export function isErrno(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof ErrnoError && error.code === code;
}
