/**
 * The worker thread behind `freeze_guard.ts`. Plain JavaScript on purpose:
 * Deno type-checks a TypeScript worker when it is first spawned (a second or
 * more on a cold cache), and a grading step should not spend its budget on
 * that. The main-side module gives it its types.
 *
 * Two jobs, chosen by the first message:
 *
 * - `{ kind: "guard", shared, port, afterMs }` watches a tick counter that the
 *   main thread bumps from a timer. When it stops moving for `afterMs`, the
 *   main thread's event loop is frozen (a blocking call, or a loop that never
 *   yields); the worker then shuts down every socket bound to local `port`, so
 *   a blocked `accept`/`read` returns and a spinning loop gets errors. It
 *   records that it did in `shared`.
 * - `{ kind: "client", port, payload, timeoutMs }` is a TCP client that runs
 *   while the main thread is blocked: connect, send `payload`, half-close,
 *   read to end of stream, then post what happened.
 *
 * @module
 */

/** Slots of the shared Int32Array (keep in step with freeze_guard.ts). */
const TICKS = 0;
const RESCUED = 1;
const STOP = 3;

const CHECK_EVERY_MS = 25;
const SHUT_RDWR = 2;
const AF_INET = 2;

/** Opens libc with the two calls a rescue needs. */
function openLibc() {
  return Deno.dlopen("libc.so.6", {
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    shutdown: { parameters: ["i32", "i32"], result: "i32" },
  }).symbols;
}

/**
 * Shuts down (both directions) every IPv4 socket of this process whose local
 * port is `port`: the listener and the connections it accepted. Descriptors
 * are process-wide, so this thread can wake a call blocked on another thread.
 */
function shutDownPort(libc, port) {
  const address = new Uint8Array(16);
  const length = new Uint32Array(1);
  const view = new DataView(address.buffer);
  let count = 0;
  for (let fd = 3; fd < 4096; fd++) {
    length[0] = 16;
    if (libc.getsockname(fd, address, length) !== 0) continue; // closed, or not a socket
    if (view.getUint16(0, true) !== AF_INET || view.getUint16(2, false) !== port) continue;
    if (libc.shutdown(fd, SHUT_RDWR) === 0) count++;
  }
  return count;
}

function guard({ shared, port, afterMs }) {
  const slots = new Int32Array(shared);
  const libc = openLibc();
  let seen = Atomics.load(slots, TICKS);
  let lastMove = performance.now();
  const timer = setInterval(() => {
    if (Atomics.load(slots, STOP) === 1) {
      clearInterval(timer);
      return;
    }
    const ticks = Atomics.load(slots, TICKS);
    if (ticks !== seen) {
      seen = ticks;
      lastMove = performance.now();
      return;
    }
    if (Atomics.load(slots, RESCUED) === 0 && performance.now() - lastMove >= afterMs) {
      // Flag first: the main thread may read it the moment its call returns.
      Atomics.store(slots, RESCUED, 1);
      shutDownPort(libc, port);
    }
  }, CHECK_EVERY_MS);
  self.postMessage({ kind: "ready" });
}

async function client({ port, payload, timeoutMs }) {
  const started = performance.now();
  const events = [];
  const note = (event, extra = {}) =>
    events.push({ atMs: performance.now() - started, event, ...extra });
  let outcome = "eof";
  let conn;
  const deadline = setTimeout(() => {
    outcome = "timeout";
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }, timeoutMs);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    note("connect");
    for (let offset = 0; offset < payload.length;) {
      const n = await conn.write(payload.subarray(offset));
      note("sent", { bytes: payload.slice(offset, offset + n) });
      offset += n;
    }
    await conn.closeWrite();
    note("half-close");
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) {
        note("eof");
        break;
      }
      note("received", { bytes: buffer.slice(0, n) });
    }
  } catch (error) {
    if (outcome !== "timeout") {
      outcome = "error";
      note("note", { detail: `${error?.name}: ${error?.message}` });
    }
  } finally {
    clearTimeout(deadline);
    try {
      conn?.close();
    } catch {
      // closed by the deadline
    }
  }
  self.postMessage({ kind: "client", outcome, events });
}

self.onmessage = (message) => {
  const data = message.data;
  if (data.kind === "guard") guard(data);
  else if (data.kind === "client") client(data);
};
