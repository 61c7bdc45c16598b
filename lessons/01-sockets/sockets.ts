/**
 * Lesson 01 — sockets: addresses, families and ports.
 *
 * Every function below has a small job; `deno task lesson 1` grades them over
 * real sockets. Read docs/01-sockets.md first.
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

const log = programLogger("greeter");

/**
 * Writes a socket address the way people and tools write it:
 * - IPv4 `127.0.0.1:4000`
 * - IPv6 `[::1]:4000` (brackets: an IPv6 address has colons of its own)
 * - Unix `unix:/tmp/app.sock`
 * UDP addresses look like TCP ones. Any other transport: throw an Error.
 */
export function formatAddress(addr: Deno.Addr): string {
  throw new TodoError("formatAddress");
}

/**
 * Starts a TCP listener on `hostname` (`"127.0.0.1"` or `"::1"`) with port 0,
 * so the kernel picks a free ephemeral port, and returns it.
 */
export function listenTcp(hostname: string): Deno.TcpListener {
  throw new TodoError("listenTcp");
}

/**
 * Starts a Unix-domain stream listener at `path`.
 *
 * A Unix socket is a file. Deno removes it when the listener is closed, but a
 * program that crashes or is killed leaves it behind, and listening on that
 * path then fails with "address already in use". So: if a *socket* file is at
 * `path`, remove it first. If something that is not a socket is there, do not
 * touch it: throw an Error that names the path.
 */
export async function listenUnix(path: string): Promise<Deno.UnixListener> {
  throw new TodoError("listenUnix");
}

/** Thrown by {@linkcode listenExclusive} when the address is taken. */
export class AddressInUseError extends Error {
  override name = "AddressInUseError";
  constructor(readonly hostname: string, readonly port: number) {
    super(
      `${formatAddress({ transport: "tcp", hostname, port })} is already in use: another ` +
        `socket listens there. Stop that program, or listen on port 0 to get a free port.`,
    );
  }
}

/**
 * Listens on exactly `hostname:port`. When the address is taken, throws an
 * {@linkcode AddressInUseError} instead of Deno's raw `AddrInUse`.
 */
export function listenExclusive(hostname: string, port: number): Deno.TcpListener {
  throw new TodoError("listenExclusive");
}

/**
 * Connects to a greeting server, reads until the server closes the
 * connection (read returns `null`), and returns the greeting decoded as UTF-8.
 * The greeting arrives in several pieces. Close your connection when done.
 */
export async function fetchGreeting(address: { hostname: string; port: number }): Promise<string> {
  throw new TodoError("fetchGreeting");
}

/**
 * Greets one accepted client and closes the connection. The greeting is one
 * line: `hello <client address>, you reached <server address>\n`, both
 * written with {@linkcode formatAddress}, e.g.
 * `hello 127.0.0.1:51034, you reached 127.0.0.1:4000\n`.
 */
export async function greet(conn: Deno.Conn): Promise<void> {
  throw new TodoError("greet");
}

/** The greeter program: `deno task run 1 greeter --port 9000`, then `nc 127.0.0.1 9000`. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 0 });
  await setupLogging(args.verbose ? "debug" : "info");
  let listener: Deno.Listener;
  try {
    listener = listenExclusive(args.host, args.port);
  } catch (error) {
    // The lesson's own error is the message a person needs, not a stack trace.
    if (!(error instanceof AddressInUseError)) throw error;
    log.error("{message}", { message: error.message });
    Deno.exitCode = 1;
    return;
  }
  log.info("listening on {addr}", { addr: formatAddress(listener.addr) });
  untilInterrupted().then(() => listener.close());
  // acceptEach survives what accept() may throw (a client reset while queued, running out
  // of descriptors); a bare `for await` over the listener would end the program there.
  await acceptEach(listener, (conn) => {
    log.info("client {peer} connected", { peer: formatAddress(conn.remoteAddr) });
    return greet(conn);
  }, { log });
  log.info("stopped");
}

if (import.meta.main) await main();
