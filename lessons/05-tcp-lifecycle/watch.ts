/**
 * A live view of the TCP states on one port, printed as they change:
 * `deno task run 5 watch --port 9000` (add `--interval 50` to look more often).
 * Uses your `socketsOnPort`. Start `deno task run 5 server --port 9000` and
 * poke it with `nc` in other terminals to see the states go by.
 *
 * @module
 */
import { parseProgramArgs, programLogger, setupLogging, untilInterrupted } from "workbook";
import { type SocketAddress, socketsOnPort, type TcpSocket } from "./tcp_states.ts";

const log = programLogger("watch");

/** `127.0.0.1:9000`, `[::1]:9000`. */
function show(end: SocketAddress): string {
  return end.address.includes(":") ? `[${end.address}]:${end.port}` : `${end.address}:${end.port}`;
}

/** One line per socket: the listener alone, a connection as `local ⇄ remote`. */
function describe(socket: TcpSocket): string {
  return socket.state === "LISTEN"
    ? `${show(socket.local)} (listener)`
    : `${show(socket.local)} ⇄ ${show(socket.remote)}`;
}

/** Prints what appeared, changed state or went away since the last look. */
function report(before: Map<string, TcpSocket>, now: Map<string, TcpSocket>): void {
  for (const [key, socket] of now) {
    const old = before.get(key);
    if (!old) log.info("+ {socket} {state}", { socket: describe(socket), state: socket.state });
    else if (old.state !== socket.state) {
      log.info("~ {socket} {from} → {to}", {
        socket: describe(socket),
        from: old.state,
        to: socket.state,
      });
    }
  }
  for (const [key, socket] of before) {
    if (!now.has(key)) {
      log.info("- {socket} gone (was {state})", { socket: describe(socket), state: socket.state });
    }
  }
}

if (import.meta.main) {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["interval"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const intervalMs = Number(args.extra.interval ?? 100);
  log.info("watching TCP sockets on port {port} every {ms} ms; Ctrl-C stops", {
    port: args.port,
    ms: intervalMs,
  });
  let stopped = false;
  untilInterrupted().then(() => stopped = true);
  let before = new Map<string, TcpSocket>();
  while (!stopped) {
    const now = new Map<string, TcpSocket>();
    for (const socket of await socketsOnPort(args.port)) {
      now.set(`${socket.family} ${describe(socket)}`, socket);
    }
    report(before, now);
    before = now;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  log.info("stopped");
}
