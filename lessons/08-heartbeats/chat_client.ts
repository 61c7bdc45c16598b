/**
 * The chat client program: `deno task run 8 client --port 9000 [--interval 3000]`.
 * Type a line and press Enter to send it; what the others say is printed as it
 * arrives. End of input (Ctrl-D) or Ctrl-C sends `quit` and exits. Uses your
 * `startChatClient`, so it heartbeats every `interval / 3` ms while you think.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { addressKey, startChatClient } from "./heartbeat.ts";

/** Lines typed on standard input (without `\n` or `\r\n`), until end of input. */
export async function* stdinLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
      yield pending.slice(0, at).replace(/\r$/, "");
      pending = pending.slice(at + 1);
    }
  }
  pending += decoder.decode();
  if (pending) yield pending;
}

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["interval"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("chat-client");
  const serverTimeoutMs = Number(args.extra.interval ?? 3000);
  const client = startChatClient({
    server: { hostname: args.host, port: args.port },
    serverTimeoutMs,
    onMessage: (text) => console.log(text),
  });
  log.info("joined udp {server} from {addr}; heartbeat every {beat} ms", {
    server: addressKey({ hostname: args.host, port: args.port }),
    addr: addressKey(client.addr),
    beat: Math.round(serverTimeoutMs / 3),
  });
  const typing = (async () => {
    for await (const line of stdinLines()) await client.send(line);
  })();
  await Promise.race([typing, untilInterrupted()]);
  await client.close();
  log.info("sent quit and left");
  Deno.exit(0); // stdin and the signal listener would keep the program alive
}
