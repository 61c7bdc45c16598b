/**
 * Lesson 06 — the chat client: two loops at once on one connection.
 *
 * A chat client cannot do "send a line, then read the reply": lines from the
 * others arrive whenever they like, also while the user is still typing. So
 * the client runs a *receive loop* (print every line the server sends) and a
 * *send loop* (send every line the user types) concurrently — the async
 * version of the classic "receive thread". Whichever ends first ends the
 * client: the user's `/quit` (or end of input), or the server going away.
 *
 * Program: `deno task run 6 client --port 9000 --nick alice`.
 *
 * @module
 */
import {
  closeQuietly,
  isConnectionGone,
  LineTooLongError,
  parseProgramArgs,
  programLogger,
  readLines,
  setupLogging,
  writeAll,
} from "workbook";

const log = programLogger("chat-client");

/** Longest line the client accepts from the server, in bytes, by default. */
export const CLIENT_MAX_LINE_BYTES = 64 * 1024;

/** Options of {@linkcode runChatClient}. */
export interface ChatClientOptions {
  /** Default `127.0.0.1`. */
  hostname?: string;
  port: number;
  /** The name to join with: the client's first line is `/nick NAME`. */
  nick: string;
  /** The lines the user types, without `\n` (the program reads them from stdin). */
  input: AsyncIterable<string>;
  /** Called with each line the server sends, without `\n`. */
  print: (line: string) => void;
  /** Longest line accepted from the server (default {@linkcode CLIENT_MAX_LINE_BYTES}). */
  maxLineBytes?: number;
}

/** How the client ended: the user quit, or the server closed the connection first. */
export type ChatClientEnd = "quit" | "server closed";

/**
 * Connects, sends `/nick NAME\n`, then runs two loops concurrently until the
 * chat is over, and closes the connection:
 *
 * - receive: `readLines` from the connection, decode each line as UTF-8,
 *   `print` it. It ends when the server closes (EOF) or the connection fails.
 * - send: each line of `input` is written with `\n`. After the user types
 *   `/quit` — or when `input` ends, which means the same: send `/quit` — stop
 *   sending, wait for the server to close, and return `"quit"`.
 *
 * When the server closes first, return `"server closed"` at once: do not wait
 * for the user's next line (race `input`'s next line against the receive
 * loop's end; then tell the input you are done with `iterator.return()`).
 */
export async function runChatClient(options: ChatClientOptions): Promise<ChatClientEnd> {
  throw new TodoError("runChatClient");
}

/**
 * The receive loop: reads lines from `conn` with `readLines(conn,
 * maxLineBytes)`, decodes each as UTF-8 and hands it to `print`, until the
 * server closes (EOF). A connection that fails or is closed under it
 * (`isConnectionGone`), or a line that is too long, also just ends the loop:
 * resolve, do not throw.
 */
export async function receiveLoop(
  conn: Deno.Conn,
  print: (line: string) => void,
  maxLineBytes: number,
): Promise<void> {
  throw new TodoError("receiveLoop");
}

/** The lines typed on stdin, without their newlines. Given: nothing to write. */
async function* stdinLines(): AsyncGenerator<string> {
  let pending = "";
  for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += text;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      yield pending.slice(0, end).replace(/\r$/, "");
      pending = pending.slice(end + 1);
    }
  }
  if (pending) yield pending;
}

/** The chat client program: type lines, see everyone else's; `/quit` or Ctrl-D to leave. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["nick"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const nick = args.extra.nick ?? args.positionals[0];
  if (!nick) {
    console.error("usage: deno task run 6 client --port PORT --nick NAME");
    Deno.exit(2);
  }
  const end = await runChatClient({
    hostname: args.host,
    port: args.port,
    nick,
    input: stdinLines(),
    print: (line) => console.log(line),
  });
  log.info("chat over: {end}", { end });
  Deno.exit(0); // stdin may still be waiting for a line nobody will type
}

if (import.meta.main) await main();
