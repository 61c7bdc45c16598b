/**
 * The broadcast program: every line a client sends goes to every connected
 * client. `deno task run 9 broadcast --port 9000`, then `nc 127.0.0.1 9000`
 * from several terminals. `--max-line N` sets the line limit (default 1024),
 * `--max-queue N` the bytes queued for one client before it is dropped as too
 * slow (default 256 KiB).
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressText, BroadcastServer, DEFAULT_MAX_QUEUE_BYTES } from "./socketserver.ts";

const log = programLogger("broadcast");

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["max-line", "max-queue"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const maxLineBytes = Number(args.extra["max-line"] ?? 1024);
  const maxQueueBytes = Number(args.extra["max-queue"] ?? DEFAULT_MAX_QUEUE_BYTES);
  const server = new BroadcastServer({ hostname: args.host, port: args.port }, {
    maxLineBytes,
    maxQueueBytes,
  });
  log.info("broadcast server listening on {addr} (lines up to {max} bytes, {queue} queued)", {
    addr: addressText(server.addr),
    max: maxLineBytes,
    queue: maxQueueBytes,
  });
  const stopped = untilInterrupted().then(() => {
    log.info("shutting down ({count} client(s))", { count: server.clients.size });
    return server.shutdown({ deadlineMs: 2000 });
  });
  await server.serveForever();
  const report = await stopped;
  log.info("stopped: shutdown {outcome}, {cut} cut off", { ...report });
}
