/**
 * The ping client program: `deno task run 8 ping-client --port 9001 [silent]`.
 * Sends each line you type, prints each line that comes back, and answers the
 * server's `PING` with `PONG` (your `answerPings`). With the word `silent` it
 * reads and prints but never answers: watch the server hang up on it.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging } from "workbook";
import { stdinLines } from "./chat_client.ts";
import { addressKey, answerPings } from "./heartbeat.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9001 });
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("ping-client");
  const silent = args.positionals.includes("silent");
  const conn = await Deno.connect({ hostname: args.host, port: args.port });
  log.info("connected to {server}{mode}", {
    server: addressKey(conn.remoteAddr),
    mode: silent ? " (silent: PINGs go unanswered)" : "",
  });
  const encoder = new TextEncoder();
  (async () => {
    for await (const line of stdinLines()) await conn.write(encoder.encode(`${line}\n`));
  })().catch(() => {});
  if (silent) {
    for await (const chunk of conn.readable) await Deno.stdout.write(chunk);
  } else {
    await answerPings(conn, (line) => console.log(line));
  }
  log.info("the server closed the connection");
  Deno.exit(0);
}
