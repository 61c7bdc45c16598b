/**
 * Reads the kernel's socket tables, `/proc/net/tcp` and `/proc/net/tcp6`
 * (Linux only), for the TCP lifecycle lesson.
 *
 * Why not `Deno.readTextFile("/proc/net/tcp")`? Deno 2 treats every file under
 * `/proc` (and `/dev`, `/sys`) as special: even with `--allow-read=/proc/net` a
 * read fails with `NotCapable: Requires all access`, i.e. it wants
 * `--allow-all`. Running `cat` needs only `--allow-run=cat`, so the workbook
 * reads the tables through it, with an empty environment.
 *
 * @module
 */

/**
 * The two socket tables: IPv4 in `tcp`, IPv6 in `tcp6`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ProcNetTcpFile } from "workbook";
 *
 * const tables: ProcNetTcpFile[] = ["tcp", "tcp6"];
 * assert.deepEqual(tables.map((file) => `/proc/net/${file}`), ["/proc/net/tcp", "/proc/net/tcp6"]);
 * ```
 */
export type ProcNetTcpFile = "tcp" | "tcp6";

/**
 * Thrown when the table cannot be read: not Linux, or no permission to run `cat`.
 *
 * @example Tell "cannot look" apart from a real failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProcNetUnavailableError, readProcNet } from "workbook";
 *
 * let text: string | undefined;
 * try {
 *   text = await readProcNet("tcp");
 * } catch (error) {
 *   if (!(error instanceof ProcNetUnavailableError)) throw error;
 *   assert.equal(error.name, "ProcNetUnavailableError"); // e.g. not Linux: skip this check
 * }
 * if (text !== undefined) assert.match(text, /local_address/);
 * ```
 */
export class ProcNetUnavailableError extends Error {
  /** Always `"ProcNetUnavailableError"`. */
  override name = "ProcNetUnavailableError";
}

/**
 * The text of `/proc/net/<file>`: a header line, then one line per socket.
 * Needs `--allow-run=cat` (the workbook's tasks grant it to lesson 05).
 *
 * @example Find a listening socket in the kernel's table
 * ```ts
 * import assert from "node:assert/strict";
 * import { readProcNet } from "workbook";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const text = await readProcNet("tcp");
 * const [header, ...rows] = text.trimEnd().split("\n");
 * assert.match(header, /^\s*sl\s+local_address\s+rem_address\s+st/);
 * // 0100007F:PORT is 127.0.0.1 in the kernel's byte order; state 0A is LISTEN.
 * const local = `0100007F:${listener.addr.port.toString(16).toUpperCase().padStart(4, "0")}`;
 * assert.ok(rows.some((row) => row.includes(local) && row.trim().split(/\s+/)[3] === "0A"));
 * listener.close();
 * ```
 */
export async function readProcNet(file: ProcNetTcpFile): Promise<string> {
  if (file !== "tcp" && file !== "tcp6") {
    throw new TypeError(`readProcNet reads "tcp" or "tcp6", not ${JSON.stringify(file)}`);
  }
  const path = `/proc/net/${file}`;
  if (Deno.build.os !== "linux") {
    throw new ProcNetUnavailableError(`${path} exists on Linux only; this is ${Deno.build.os}`);
  }
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("cat", {
      args: [path],
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new ProcNetUnavailableError(
        `reading ${path} needs --allow-run=cat (Deno reads files under /proc only with ` +
          `--allow-all; \`deno task lesson 5\` and \`deno task run 5 …\` grant cat): ${error.message}`,
      );
    }
    throw error;
  }
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim();
    throw new ProcNetUnavailableError(`cat ${path} failed: ${why || `exit code ${output.code}`}`);
  }
  return new TextDecoder().decode(output.stdout);
}
