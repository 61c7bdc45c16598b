/**
 * A raw client of the grader's whose bytes are all in the kernel before the
 * server under test has even accepted it. From the server's first read on,
 * every read finds data, round after round: the way to see whether a
 * hand-written event loop still yields to the rest of the program while it is
 * busy (a loop that yields only when idle never does here).
 *
 * Linux only (libc through FFI); needs `--allow-ffi` and net access to
 * 127.0.0.1, as the I/O model lessons have.
 *
 * @module
 */
import { connectTcp, send, setSocketOption, SO_SNDBUF, SOL_SOCKET, sys } from "../ffi/libc.ts";
import type { Grader } from "./grader.ts";

/** A connected raw client and how much of its payload the kernel took. */
export interface PrefilledClient {
  /** The client's non-blocking descriptor; closed when the check ends. */
  fd: number;
  /** How many bytes of the payload are queued (the kernel's buffers on both ends). */
  sent: number;
}

/**
 * Connects a non-blocking raw client to `port` on 127.0.0.1 with a 1 MiB send
 * buffer and queues as much of `payload` as the kernel takes, without waiting.
 * The fd is closed when the check ends, and the transcript notes the bytes
 * queued under `label`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLesson } from "../catalogue.ts";
 * import { accept, listenTcp, read, sys } from "../ffi/libc.ts";
 * import { numberedLines } from "./bytes.ts";
 * import { Grader } from "./grader.ts";
 * import { prefilledClient } from "./raw_client.ts";
 *
 * const t = new Grader(getLesson("10"), "example");
 * const listener = listenTcp({ port: 0 });
 * const payload = numberedLines(64 * 1024, "stream");
 * const client = prefilledClient(t, listener.port, payload);
 * assert.equal(client.sent, payload.length); // 64 KiB fit in loopback's buffers
 * const server = accept(listener.fd)!;
 * const first = new Uint8Array(16);
 * assert.equal(read(server, first), 16); // there before the server ever asked
 * assert.deepEqual(first, payload.subarray(0, 16));
 * sys.close(server);
 * sys.close(listener.fd);
 * await t.cleanup();
 * ```
 */
export function prefilledClient(
  t: Pick<Grader, "defer" | "transcript">,
  port: number,
  payload: Uint8Array,
  label = "stream",
): PrefilledClient {
  const fd = connectTcp("127.0.0.1", port, { nonBlocking: true, timeoutMs: 1000 });
  t.defer(() => sys.close(fd));
  setSocketOption(fd, SOL_SOCKET, SO_SNDBUF, 1 << 20);
  let sent = 0;
  // Bounded: the kernel takes a few MiB at most before send() would block.
  for (let i = 0; i < 1000 && sent < payload.length; i++) {
    const n = send(fd, payload.subarray(sent));
    if (n === null) break;
    sent += n;
  }
  t.transcript.record(label, "note", {
    detail: `the grader's raw client put ${sent} bytes in the kernel before your loop ran`,
  });
  return { fd, sent };
}
