/**
 * The lines server: `deno task run 4 lines --port 9000`, then `nc 127.0.0.1 9000`.
 *
 * Answers every line with its number, its size in bytes and its text, e.g.
 * `3 (6 bytes): héllo`. A line that is not UTF-8 gets an error line and the
 * connection goes on; a line over `--max` bytes (default 64) gets an error
 * line and the connection is closed. Uses your `LineReader`.
 *
 * @module
 */
import {
  acceptEach,
  parseProgramArgs,
  programLogger,
  setupLogging,
  untilInterrupted,
} from "workbook";
import { InvalidUtf8Error, LineReader, LineTooLongError, writeAll } from "./framing.ts";

const log = programLogger("lines");
const encoder = new TextEncoder();

function peerOf(conn: Deno.Conn): string {
  const addr = conn.remoteAddr as Deno.NetAddr;
  return `${addr.hostname}:${addr.port}`;
}

/** Serves one client until it closes, sends an over-long line, or the connection fails. */
async function serveLines(conn: Deno.Conn, maxLineBytes: number): Promise<void> {
  const peer = peerOf(conn);
  const reply = (text: string) => writeAll(conn, encoder.encode(text));
  const lines = new LineReader(conn, { maxLineBytes, readSize: 1024 });
  let count = 0;
  try {
    while (true) {
      let line: string | null;
      try {
        line = await lines.readLine();
      } catch (error) {
        if (!(error instanceof InvalidUtf8Error)) throw error;
        count++;
        log.info("{peer}: {error}", { peer, error: error.message });
        await reply(`error: ${error.message}\n`);
        continue;
      }
      if (line === null) break;
      count++;
      log.debug("{peer} line {count}: {line}", { peer, count, line });
      await reply(`${count} (${encoder.encode(line).length} bytes): ${line}\n`);
    }
    log.info("client {peer} finished after {count} line(s)", { peer, count });
  } catch (error) {
    if (error instanceof LineTooLongError) {
      log.warn("{peer}: {error}; closing", { peer, error: error.message });
      await reply(`error: ${error.message}; closing\n`).catch(() => {});
    } else {
      log.warn("client {peer} failed: {error}", { peer, error });
    }
  } finally {
    conn.close();
  }
}

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["max"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const maxLineBytes = Number(args.extra.max ?? 64);
  const listener = Deno.listen({ hostname: args.host, port: args.port });
  log.info("lines server on {host}:{port}, lines up to {max} bytes", {
    host: listener.addr.hostname,
    port: listener.addr.port,
    max: maxLineBytes,
  });
  untilInterrupted().then(() => listener.close());
  await acceptEach(listener, (conn) => {
    log.info("client {peer} connected", { peer: peerOf(conn) });
    return serveLines(conn, maxLineBytes);
  }, { log });
  log.info("stopped");
}

if (import.meta.main) await main();
