/**
 * Sends one request with your `requestWithHalfClose` and prints the reply:
 * `deno task run 5 request --port 9000 --text "hello"`.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging } from "workbook";
import { requestWithHalfClose } from "./tcp_states.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["text"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("request");
  const text = args.extra.text ?? "hello\n";
  log.info("sending {n} bytes to {host}:{port}, then half-closing", {
    n: new TextEncoder().encode(text).length,
    host: args.host,
    port: args.port,
  });
  const reply = await requestWithHalfClose({ hostname: args.host, port: args.port }, text);
  log.info("the server closed after {n} bytes of reply", { n: reply.length });
  console.log(new TextDecoder().decode(reply));
}
