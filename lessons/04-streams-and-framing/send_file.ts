/**
 * The file server: `deno task run 4 sendfile --port 9000 --file README.md`,
 * then `nc 127.0.0.1 9000 > copy.md`.
 *
 * Sends the file to every client that connects, then closes the connection.
 * Uses your `sendFile`. (The program may read files inside the project only.)
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
import { sendFile } from "./framing.ts";

const log = programLogger("sendfile");

async function serveFile(conn: Deno.Conn, path: string): Promise<void> {
  const addr = conn.remoteAddr as Deno.NetAddr;
  const peer = `${addr.hostname}:${addr.port}`;
  const started = performance.now();
  try {
    const sent = await sendFile(path, conn.writable);
    const ms = performance.now() - started;
    log.info("sent {sent} bytes of {path} to {peer} in {ms} ms", {
      sent,
      path,
      peer,
      ms: ms.toFixed(1),
    });
  } catch (error) {
    log.warn("sending {path} to {peer} failed: {error}", { path, peer, error });
  } finally {
    try {
      conn.close();
    } catch {
      // A sendFile that closed the connection itself leaves nothing to close.
    }
  }
}

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["file"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const path = args.extra.file ?? "README.md";
  const listener = Deno.listen({ hostname: args.host, port: args.port });
  log.info("serving {path} on {host}:{port}", {
    path,
    host: listener.addr.hostname,
    port: listener.addr.port,
  });
  untilInterrupted().then(() => listener.close());
  await acceptEach(listener, (conn) => {
    log.info("client {peer} connected", {
      peer: `${(conn.remoteAddr as Deno.NetAddr).hostname}:${
        (conn.remoteAddr as Deno.NetAddr).port
      }`,
    });
    return serveFile(conn, path);
  }, { log });
  log.info("stopped");
}

if (import.meta.main) await main();
