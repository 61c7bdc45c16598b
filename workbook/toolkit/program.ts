/**
 * Command-line flags shared by every standalone lesson program:
 * `--host` (default 127.0.0.1, never 0.0.0.0 unless asked), `--port`,
 * `--verbose`, plus any lesson-specific string flags.
 *
 * @module
 */
import { parseArgs } from "node:util";

/**
 * Flags every lesson program understands, as {@linkcode parseProgramArgs}
 * returns them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProgramArgs, type ProgramArgs } from "workbook";
 *
 * const args: ProgramArgs = parseProgramArgs(["--verbose", "--name", "ada", "extra"], { port: 7 }, [
 *   "name",
 * ]);
 * assert.deepEqual(args, {
 *   host: "127.0.0.1",
 *   port: 7,
 *   verbose: true,
 *   extra: { name: "ada" },
 *   positionals: ["extra"],
 *   public: false,
 * });
 * ```
 */
export interface ProgramArgs {
  /** Address to bind or connect to. Defaults to loopback: a lesson server is not for the network. */
  host: string;
  /** Port; 0 lets the kernel pick a free one (the program logs which). */
  port: number;
  /** Log at debug level. */
  verbose: boolean;
  /** Lesson-specific `--name value` flags that were given. */
  extra: Record<string, string>;
  /** Words after the flags. */
  positionals: string[];
  /** `--public` was given: the program may bind a host other than loopback. */
  public: boolean;
}

let publicBind = false;

/**
 * True once a program was started with `--public` (that is, once
 * {@linkcode parseProgramArgs} accepted a non-loopback `--host` with it).
 * Deno's net permission guards `Deno.listen`, but not sockets made through
 * FFI: the workbook's libc bindings ask this before binding anything but
 * loopback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProgramArgs, publicBindAllowed } from "workbook";
 *
 * parseProgramArgs(["--host", "::1"], { port: 0 }); // loopback: no --public needed
 * assert.equal(publicBindAllowed(), false);
 * ```
 */
export function publicBindAllowed(): boolean {
  return publicBind;
}

/**
 * A host as sockets take it: `[::1]` (the form beside a port) becomes `::1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withoutBrackets } from "workbook";
 *
 * assert.equal(withoutBrackets("[::1]"), "::1");
 * assert.equal(withoutBrackets("localhost"), "localhost");
 * ```
 */
export function withoutBrackets(host: string): string {
  return host.replace(/^\[(.*)\]$/, "$1");
}

/**
 * True for loopback hosts: `localhost`, 127.0.0.0/8 and `::1` (brackets allowed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopbackHost } from "workbook";
 *
 * assert.ok(isLoopbackHost("127.0.0.1") && isLoopbackHost("127.1.2.3"));
 * assert.ok(isLoopbackHost("[::1]") && isLoopbackHost("LocalHost"));
 * assert.ok(!isLoopbackHost("0.0.0.0") && !isLoopbackHost("192.168.1.10"));
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const bare = withoutBrackets(host).toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/**
 * The default host for lesson programs: loopback only. (Deno's own default
 * is 0.0.0.0, every interface: always pass a hostname.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_HOST } from "./program.ts";
 *
 * const listener = Deno.listen({ hostname: DEFAULT_HOST, port: 0 });
 * assert.equal(listener.addr.hostname, "127.0.0.1");
 * listener.close();
 * ```
 */
export const DEFAULT_HOST = "127.0.0.1";

/**
 * Parses `--host/--port/--verbose` (and `extraFlags`) from `args`, printing
 * a usage line and exiting on `--help` or a bad port.
 *
 * @param args usually `Deno.args`
 * @param defaults the port (and host) used when no flag is given
 * @param extraFlags names of further `--name value` flags the program accepts
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProgramArgs } from "workbook";
 *
 * const args = parseProgramArgs(["--port", "9000"], { port: 0 });
 * assert.equal(args.host, "127.0.0.1");
 * assert.equal(args.port, 9000);
 * assert.equal(parseProgramArgs(["-p", "1", "--host", "[::1]"], { port: 0 }).host, "::1");
 * ```
 */
export function parseProgramArgs(
  args: string[],
  defaults: { host?: string; port: number },
  extraFlags: string[] = [],
): ProgramArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    host: { type: "string" },
    port: { type: "string", short: "p" },
    verbose: { type: "boolean", short: "v" },
    public: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  };
  for (const name of extraFlags) options[name] = { type: "string" };
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true });
  const usage = `flags: --host HOST (default ${defaults.host ?? DEFAULT_HOST}) --port PORT ` +
    `(default ${defaults.port})${
      extraFlags.map((f) => ` --${f} VALUE`).join("")
    } --verbose --public (to bind a host other than loopback)`;
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  const port = values.port === undefined ? defaults.port : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be a whole number from 0 to 65535, got ${values.port}\n${usage}`);
    Deno.exit(2);
  }
  const extra: Record<string, string> = {};
  for (const name of extraFlags) {
    const value = values[name];
    if (typeof value === "string") extra[name] = value;
  }
  const host = withoutBrackets(
    typeof values.host === "string" ? values.host : defaults.host ?? DEFAULT_HOST,
  );
  if (!isLoopbackHost(host)) {
    if (values.public !== true) {
      console.error(
        `--host ${host} is not a loopback address: lesson programs serve this machine only ` +
          `(127.0.0.1, localhost or ::1). Add --public to bind it anyway.\n${usage}`,
      );
      Deno.exit(2);
    }
    console.warn(
      `warning: --public: binding ${host}, which other machines can reach. A lesson program ` +
        `is not hardened for the network; stop it when you are done.`,
    );
    publicBind = true;
  }
  return {
    host,
    port,
    verbose: values.verbose === true,
    extra,
    positionals,
    public: values.public === true,
  };
}

/**
 * Resolves when the program is asked to stop (Ctrl-C / SIGINT, or SIGTERM),
 * so a program's main can close its server cleanly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { untilInterrupted } from "workbook";
 *
 * const stopping = untilInterrupted(); // listens for SIGINT and SIGTERM from here on
 * Deno.kill(Deno.pid, "SIGTERM"); // what `kill PID` would send
 * let timer: ReturnType<typeof setTimeout> | undefined;
 * const deadline = new Promise((_, reject) => {
 *   timer = setTimeout(() => reject(new Error("no signal within 2 s")), 2000);
 * });
 * assert.equal(await Promise.race([stopping, deadline]), "SIGTERM");
 * clearTimeout(timer);
 * ```
 */
export function untilInterrupted(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const handlers = signals.map((signal) => {
      const handler = () => {
        signals.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]));
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return handler;
    });
  });
}
