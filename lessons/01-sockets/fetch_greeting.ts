/**
 * Fetches a greeting: `deno task run 1 fetch --port 9000` prints what the
 * server at 127.0.0.1:9000 sends before it closes. Uses your `fetchGreeting`.
 *
 * @module
 */
import { parseProgramArgs } from "workbook";
import { fetchGreeting } from "./sockets.ts";

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9000 });
  console.log(await fetchGreeting({ hostname: args.host, port: args.port }));
}
