/**
 * A server to watch the TCP states with: `deno task run 5 server --port 9000`.
 *
 * `--mode reply` (default): reads the request until the client half-closes
 * (EOF), then answers `got N bytes` and closes — try it with
 * `deno task run 5 request --port 9000` or `nc -N 127.0.0.1 9000`.
 * `--mode forget`: reads until EOF and never closes: its sockets stay in
 * CLOSE_WAIT until you stop the server.
 * `--mode hangup`: says `bye` and closes at once, so the server is the
 * active closer and its port collects TIME_WAIT sockets.
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

const MODES = ["reply", "forget", "hangup"] as const;
type Mode = (typeof MODES)[number];

const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** Reads until the client half-closes; returns how many bytes came. */
async function readToEnd(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(16 * 1024);
  let total = 0;
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) total += n;
  return total;
}

async function serve(conn: Deno.Conn, mode: Mode, forgotten: Set<Deno.Conn>, peer: string) {
  const log = programLogger("server", peer);
  log.info("connected ({mode})", { mode });
  try {
    if (mode === "hangup") {
      await writeAll(conn, encoder.encode("bye\n"));
      log.info(
        "said bye; closing first: this side sits in TIME_WAIT, unless bytes the client sent are still unread here (then the close sends RST)",
      );
      conn.close();
      return;
    }
    const total = await readToEnd(conn);
    log.info("client finished sending (EOF) after {total} bytes", { total });
    if (mode === "forget") {
      log.warn("not closing: this socket stays in CLOSE_WAIT until the server stops");
      forgotten.add(conn);
      return;
    }
    await writeAll(conn, encoder.encode(`got ${total} bytes\n`));
    conn.close();
    log.info("replied and closed");
  } catch (error) {
    log.warn("connection failed: {error}", { error: String(error) });
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["mode"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const log = programLogger("server");
  const mode = (args.extra.mode ?? "reply") as Mode;
  if (!MODES.includes(mode)) {
    console.error(`--mode must be one of ${MODES.join(", ")}`);
    Deno.exit(2);
  }
  const listener = Deno.listen({ hostname: args.host, port: args.port });
  const forgotten = new Set<Deno.Conn>();
  log.info("listening on {host}:{port} in {mode} mode", {
    host: listener.addr.hostname,
    port: listener.addr.port,
    mode,
  });
  untilInterrupted().then(() => listener.close());
  await acceptEach(listener, (conn) => {
    const peer = `${(conn.remoteAddr as Deno.NetAddr).hostname}:${
      (conn.remoteAddr as Deno.NetAddr).port
    }`;
    return serve(conn, mode, forgotten, peer);
  }, { log });
  for (const conn of forgotten) conn.close();
  log.info("stopped");
}
