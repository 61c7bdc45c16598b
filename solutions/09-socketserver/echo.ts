/**
 * The echo program: a concurrent TCP echo server built on your framework.
 * `deno task run 9 echo --port 9000`, then `nc 127.0.0.1 9000` from two
 * terminals at once. Ctrl-C shuts it down gracefully (2 s deadline).
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressText, ConcurrentTcpServer, EchoHandler } from "./socketserver.ts";

const log = programLogger("echo");

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  const server = new ConcurrentTcpServer({ hostname: args.host, port: args.port }, EchoHandler);
  log.info("echo server listening on {addr}", { addr: addressText(server.addr) });
  const stopped = untilInterrupted().then(() => {
    log.info("shutting down ({count} request(s) in flight)", { count: server.inFlight });
    return server.shutdown({ deadlineMs: 2000 });
  });
  await server.serveForever();
  const report = await stopped;
  log.info("stopped: shutdown {outcome}, {cut} cut off", { ...report });
}
