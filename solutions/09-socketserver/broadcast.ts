/**
 * The broadcast program: every line a client sends goes to every connected
 * client. `deno task run 9 broadcast --port 9000`, then `nc 127.0.0.1 9000`
 * from several terminals. `--max-line N` sets the line limit (default 1024).
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressText, BroadcastServer } from "./socketserver.ts";

const log = programLogger("broadcast");

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["max-line"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const maxLineBytes = Number(args.extra["max-line"] ?? 1024);
  const server = new BroadcastServer({ hostname: args.host, port: args.port }, { maxLineBytes });
  log.info("broadcast server listening on {addr} (lines up to {max} bytes)", {
    addr: addressText(server.addr),
    max: maxLineBytes,
  });
  const stopped = untilInterrupted().then(() => {
    log.info("shutting down ({count} client(s))", { count: server.clients.size });
    return server.shutdown({ deadlineMs: 2000 });
  });
  await server.serveForever();
  const report = await stopped;
  log.info("stopped: shutdown {outcome}, {cut} cut off", { ...report });
}
