/**
 * The ping server program:
 * `deno task run 8 ping-server --port 9001 [--idle 5000] [--pong 2000] [--max-line 8192]`.
 * An echo server that sends `PING\n` to a peer idle for `--idle` ms and hangs
 * up if nothing comes back within `--pong` ms, or on a line longer than
 * `--max-line` bytes. Uses your `startPingServer`.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressKey, DEFAULT_MAX_LINE_BYTES, startPingServer } from "./heartbeat.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["idle", "pong", "max-line"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("ping-server");
  const idleMs = Number(args.extra.idle ?? 5000);
  const pongTimeoutMs = Number(args.extra.pong ?? 2000);
  const maxLineBytes = Number(args.extra["max-line"] ?? DEFAULT_MAX_LINE_BYTES);
  const server = startPingServer({
    hostname: args.host,
    port: args.port,
    idleMs,
    pongTimeoutMs,
    maxLineBytes,
  });
  log.info(
    "listening on tcp {addr}; PING after {idleMs} ms idle, hang up {pongTimeoutMs} ms later",
    {
      addr: addressKey(server.addr),
      idleMs,
      pongTimeoutMs,
    },
  );
  await untilInterrupted();
  await server.close();
  log.info("stopped");
}
