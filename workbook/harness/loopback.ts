/**
 * Two small loopback helpers for suites.
 *
 * - {@linkcode ioTurns}: lets the event loop poll for I/O a counted number of
 *   times. Bytes or a datagram the grader already sent to learner code have
 *   then been handed to the read or receive that was waiting for them, and the
 *   code after it has run. That is how a suite proves "your code has seen it"
 *   when nothing comes back to show it (a partial line, a copy of a request
 *   while its handler still runs) — by events, not by a sleep.
 * - {@linkcode freePort}: a port on 127.0.0.1 that the kernel just handed out
 *   and took back, for checking a `port` option with a non-zero value.
 *
 * @module
 */
import { nextTurn, waitFor } from "./wait.ts";

const TICK = new Uint8Array([0x74]); // "t"

/** How long one turn may take before the helper gives up (a datagram to itself is not lost). */
const TURN_MS = 2000;

/**
 * Lets the event loop poll for I/O `turns` times (default 3). Each turn is a
 * datagram a private UDP socket on 127.0.0.1 sends itself and receives, then
 * one macrotask: whatever was already queued on other sockets when the call
 * began has been delivered to the code waiting for it by the time it returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ioTurns } from "./loopback.ts";
 *
 * const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * let got = false;
 * const receiving = b.receive().then(() => (got = true));
 * await a.send(new Uint8Array([1]), b.addr);
 * await ioTurns();
 * assert.equal(got, true);
 * await receiving;
 * a.close();
 * b.close();
 * ```
 */
export async function ioTurns(turns = 3): Promise<void> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (let turn = 0; turn < turns; turn++) {
      await socket.send(TICK, socket.addr);
      const receiving = socket.receive();
      receiving.catch(() => {}); // rejected by close() below if the turn timed out
      const waited = await waitFor(receiving, { timeoutMs: TURN_MS });
      if (waited.status !== "done") {
        throw new Error(`ioTurns: a datagram to itself took over ${TURN_MS} ms`);
      }
      await nextTurn();
    }
  } finally {
    socket.close();
  }
}

/**
 * A TCP or UDP port on 127.0.0.1 that was free a moment ago: the kernel's
 * pick for a socket that is closed again at once. Another program could take
 * it in between, which on a test machine practically never happens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freePort } from "./loopback.ts";
 *
 * const port = freePort("tcp");
 * assert.ok(port > 0);
 * const listener = Deno.listen({ hostname: "127.0.0.1", port });
 * assert.equal(listener.addr.port, port);
 * listener.close();
 * ```
 */
export function freePort(transport: "tcp" | "udp"): number {
  const socket = transport === "tcp"
    ? Deno.listen({ hostname: "127.0.0.1", port: 0 })
    : Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const { port } = socket.addr as Deno.NetAddr;
  socket.close();
  return port;
}
