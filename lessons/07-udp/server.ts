/**
 * The request server: `deno task run 7 server --port 9001`.
 *
 * Answers each request `"<id>\n<text>"` with `"<id>\n<TEXT>"` (upper case),
 * running each request once however often it arrives; a repeated request
 * gets the cached reply. Poke it with
 * `printf '1\nhello' | nc -u -w1 127.0.0.1 9001`, and send the same line
 * twice to see the replay in the log. Uses your `startReliableServer`.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressText, DEFAULT_CACHE_SIZE, startReliableServer } from "./udp.ts";

const log = programLogger("server");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9001 }, ["cache"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const cacheSize = Number(args.extra.cache ?? DEFAULT_CACHE_SIZE);
  const server = startReliableServer({
    hostname: args.host,
    port: args.port,
    cacheSize,
    handler: (payload) => encoder.encode(decoder.decode(payload).toUpperCase()),
  });
  log.info("request server on {addr}, keeping {cacheSize} replies for replay", {
    addr: addressText(server.addr),
    cacheSize,
  });
  await untilInterrupted();
  await server.close();
  log.info("stopped: {executed} executed, {duplicates} duplicates answered from the cache", {
    ...server.stats,
  });
}

if (import.meta.main) await main();
