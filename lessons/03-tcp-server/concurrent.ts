/**
 * The task-per-connection ack server as a program:
 * `deno task run 3 concurrent --port 9000`, then `nc 127.0.0.1 9000` in as
 * many terminals as you like. Uses your `startConcurrentServer`; logs every
 * connect and disconnect.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { startConcurrentServer } from "./server.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("concurrent");
  const server = startConcurrentServer({ hostname: args.host, port: args.port });
  log.info("listening on {host}:{port}, a task per client; try: nc {host} {port}", {
    host: server.addr.hostname,
    port: server.addr.port,
  });
  await untilInterrupted();
  log.info("stopping: closing the listener and every live connection");
  await server.close();
  log.info("stopped");
}
