/**
 * The frames echo server: `deno task run 4 frames --port 9000`.
 *
 * Speaks length-prefixed frames (4-byte big-endian length, then the payload)
 * and sends every frame it receives straight back. A header announcing more
 * than `--max` bytes (default 65536), or a connection that ends inside a
 * frame, is logged and the connection closed. Uses your `FrameReader` and
 * `writeFrame`. Poke it with the Python client in docs/04-streams-and-framing.md.
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
import { FrameReader, writeFrame } from "./framing.ts";

const log = programLogger("frames");

function peerOf(conn: Deno.Conn): string {
  const addr = conn.remoteAddr as Deno.NetAddr;
  return `${addr.hostname}:${addr.port}`;
}

/** Echoes frames until the client ends the stream or breaks the framing. */
async function echoFrames(conn: Deno.Conn, maxFrameBytes: number): Promise<void> {
  const peer = peerOf(conn);
  // conn.read, not conn.readable: Deno closes the whole connection when its
  // readable ends, and an echo must still be able to answer after the client's EOF.
  const frames = new FrameReader(conn, { maxFrameBytes });
  let count = 0;
  try {
    for (let frame = await frames.readFrame(); frame !== null; frame = await frames.readFrame()) {
      count++;
      log.debug("{peer} frame {count}: {bytes} bytes", { peer, count, bytes: frame.length });
      await writeFrame(conn, frame, maxFrameBytes);
    }
    log.info("client {peer} finished after {count} frame(s)", { peer, count });
  } catch (error) {
    log.warn("client {peer}: {error}; closing", {
      peer,
      error: error instanceof Error ? `${error.name}: ${error.message}` : error,
    });
  } finally {
    conn.close();
  }
}

async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 }, ["max"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const maxFrameBytes = Number(args.extra.max ?? 65536);
  const listener = Deno.listen({ hostname: args.host, port: args.port });
  log.info("frames echo server on {host}:{port}, frames up to {max} bytes", {
    host: listener.addr.hostname,
    port: listener.addr.port,
    max: maxFrameBytes,
  });
  untilInterrupted().then(() => listener.close());
  await acceptEach(listener, (conn) => {
    log.info("client {peer} connected", { peer: peerOf(conn) });
    return echoFrames(conn, maxFrameBytes);
  }, { log });
  log.info("stopped");
}

if (import.meta.main) await main();
