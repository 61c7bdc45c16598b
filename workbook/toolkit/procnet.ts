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

/** The two socket tables: IPv4 in `tcp`, IPv6 in `tcp6`. */
export type ProcNetTcpFile = "tcp" | "tcp6";

/** Thrown when the table cannot be read: not Linux, or no permission to run `cat`. */
export class ProcNetUnavailableError extends Error {
  override name = "ProcNetUnavailableError";
}

/**
 * The text of `/proc/net/<file>`: a header line, then one line per socket.
 * Needs `--allow-run=cat` (the workbook's tasks grant it to lesson 05).
 *
 * @example
 * ```ts ignore
 * import { readProcNet } from "workbook";
 *
 * const text = await readProcNet("tcp");
 * console.log(text.split("\n")[0]); // "  sl  local_address rem_address   st tx_queue …"
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
