/**
 * The request client: `deno task run 7 client --port 9001 hello world`.
 *
 * Sends each word (or, with none, each line typed on stdin) as one request
 * to the request server, retransmitting when a reply is late, and prints the
 * reply. Flags: `--timeout-ms` (default 200) and `--tries` (default 5). Point
 * it at a port where nothing listens to watch it give up. Uses your
 * `ReliableClient`.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging } from "workbook";
import { addressText, ReliableClient } from "./udp.ts";

const log = programLogger("client");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function* stdinLines(): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop()!;
    yield* lines;
  }
  if (rest) yield rest;
}

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9001 }, ["timeout-ms", "tries"]);
  await setupLogging(args.verbose ? "debug" : "warning");
  const client = new ReliableClient({
    server: { hostname: args.host, port: args.port },
    timeoutMs: Number(args.extra["timeout-ms"] ?? 200),
    maxTries: Number(args.extra.tries ?? 5),
  });
  log.info("client {local} → {server}", {
    local: addressText(client.localAddr),
    server: addressText(client.conn.remoteAddr),
  });
  let failed = false;
  try {
    const inputs = args.positionals.length ? args.positionals : stdinLines();
    for await (const text of inputs) {
      const reply = await client.request(encoder.encode(text));
      console.log(decoder.decode(reply));
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    failed = true;
  } finally {
    await client.close();
  }
  console.error(
    `${client.stats.requests} request(s), ${client.stats.retransmissions} retransmission(s), ` +
      `${client.stats.staleReplies} stale repl${client.stats.staleReplies === 1 ? "y" : "ies"}`,
  );
  if (failed) Deno.exit(1);
}

if (import.meta.main) await main();
