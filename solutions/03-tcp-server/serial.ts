/**
 * The serial ack server as a program: `deno task run 3 serial --port 9000`,
 * then `nc 127.0.0.1 9000` in two terminals — the second waits for the first.
 * Uses your `startSerialServer`; logs every connect and disconnect.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { startSerialServer } from "./server.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("serial");
  const server = startSerialServer({ hostname: args.host, port: args.port });
  log.info("listening on {host}:{port}, one client at a time; try: nc {host} {port}", {
    host: server.addr.hostname,
    port: server.addr.port,
  });
  await untilInterrupted();
  log.info("stopping: closing the listener and the live connection");
  await server.close();
  log.info("stopped");
}
