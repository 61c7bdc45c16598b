/**
 * A slow server: every client waits `--delay-ms` (default 2000), then gets
 * `done after N ms\n` and the connection closes. `--mode serial` (default)
 * runs your {@linkcode serveSerial}, `--mode concurrent` your
 * {@linkcode serveConcurrent}. Open three `nc 127.0.0.1 9000` at once and
 * watch when each gets its answer.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { serveConcurrent, serveSerial } from "./io_models.ts";

const log = programLogger("slow");

async function main() {
  const { host, port, verbose, extra } = parseProgramArgs(Deno.args, { port: 0 }, [
    "mode",
    "delay-ms",
  ]);
  await setupLogging(verbose ? "debug" : "info");
  const mode = extra.mode ?? "serial";
  const delayMs = Number(extra["delay-ms"] ?? 2000);
  if (mode !== "serial" && mode !== "concurrent") {
    console.error(`--mode must be serial or concurrent, got ${mode}`);
    Deno.exit(2);
  }
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    console.error(`--delay-ms must be a number of milliseconds, got ${extra["delay-ms"]}`);
    Deno.exit(2);
  }
  const listener = Deno.listen({ hostname: host, port });
  log.info("{mode} slow server on {host}:{port}, {delayMs} ms per client", {
    mode,
    host: listener.addr.hostname,
    port: listener.addr.port,
    delayMs,
  });
  let next = 0;
  const handler = async (conn: Deno.Conn) => {
    const id = ++next;
    const peer = conn.remoteAddr as Deno.NetAddr;
    const started = performance.now();
    log.info("client {id} ({peer}) connected: working for {delayMs} ms", {
      id,
      peer: `${peer.hostname}:${peer.port}`,
      delayMs,
    });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await conn.write(new TextEncoder().encode(`done after ${delayMs} ms\n`));
    log.info("client {id} answered {ms} ms after its handler started; closing", {
      id,
      ms: Math.round(performance.now() - started),
    });
  };
  untilInterrupted().then(() => listener.close());
  await (mode === "serial" ? serveSerial : serveConcurrent)(listener, handler);
  log.info("stopped");
}

if (import.meta.main) await main();
