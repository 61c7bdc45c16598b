/**
 * The core of the libc bindings: which C functions are bound (the symbol
 * table handed to `Deno.dlopen`), opening `libc.so.6` on first use, reading
 * the JS thread's errno, and {@linkcode ffiAvailable} to skip cleanly where
 * none of this works.
 *
 * The library is opened once and kept: at import time when `--allow-ffi` is
 * already granted (so a test's first call does not count as a resource leak),
 * else on first use. Layout notes: both supported CPUs are little-endian and
 * LP64 (`long`, `size_t`, `rlim_t`, `time_t` are 64-bit).
 *
 * @module
 */

/** The shared object {@linkcode libc} opens: glibc's stable soname. */
const LIBC_PATH = "libc.so.6";

/**
 * The libc functions the workbook binds, as passed to `Deno.dlopen`. `*_async`
 * entries are the same C functions marked `nonblocking: true`: Deno runs them
 * on a worker thread and returns a Promise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LIBC_SYMBOLS } from "./library.ts";
 *
 * assert.deepEqual(LIBC_SYMBOLS.accept4.parameters, ["i32", "buffer", "buffer", "i32"]);
 * assert.equal(LIBC_SYMBOLS.poll_async.name, "poll");
 * ```
 */
export const LIBC_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // fcntl is variadic; its third argument is read as a full machine word, so
  // pass 64 bits (an i32 would leave the upper half of the register undefined).
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  select: { parameters: ["i32", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The raw symbol table returned by {@linkcode libc}. */
export type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/**
 * Whether the bindings can be used here, and if not, why: the answer of
 * {@linkcode ffiAvailable}.
 *
 * @example Skip a test where FFI is missing
 * ```ts
 * import assert from "node:assert/strict";
 * import { type FfiAvailability, ffiAvailable } from "workbook/libc";
 *
 * const ffi: FfiAvailability = ffiAvailable();
 * const skipReason = ffi.ok ? undefined : ffi.reason;
 * assert.equal(skipReason, undefined); // the workbook's FFI lessons run on Linux
 * ```
 */
export type FfiAvailability = { ok: true } | { ok: false; reason: string };

let library: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | null = null;
/** View of the JS thread's errno (an `int` in thread-local storage). */
let errnoView: Deno.UnsafePointerView | null = null;
let availability: FfiAvailability | null = null;

function platformProblem(): string | null {
  if (Deno.build.os !== "linux") {
    return `the libc FFI bindings need Linux; this is ${Deno.build.os}/${Deno.build.arch}`;
  }
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `the libc FFI bindings know struct layouts for x86_64 and aarch64 only, not ${Deno.build.arch}`;
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state === "denied") {
    return "FFI permission is denied: run with --allow-ffi";
  }
  return null;
}

/**
 * Opens `libc.so.6` on first use and returns its symbols (later calls reuse
 * the handle). Throws with {@linkcode ffiAvailable}'s reason if it can't.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { libc } from "./library.ts";
 *
 * const fd = libc().socket(2, 1, 0); // AF_INET, SOCK_STREAM: the raw C call
 * assert.ok(fd >= 0);
 * assert.equal(libc().close(fd), 0);
 * ```
 */
export function libc(): LibcSymbols {
  if (library !== null) return library.symbols;
  const problem = platformProblem();
  if (problem !== null) throw new Error(problem);
  let opened: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;
  try {
    opened = Deno.dlopen(LIBC_PATH, LIBC_SYMBOLS);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open ${LIBC_PATH} (glibc is required): ${why}`, { cause: error });
  }
  // The errno address is fixed per thread, and sync FFI calls always run on
  // this (the JS) thread, so one lookup serves every later read.
  const errnoPointer = opened.symbols.__errno_location();
  if (errnoPointer === null) {
    opened.close();
    throw new Error("__errno_location() returned NULL");
  }
  errnoView = new Deno.UnsafePointerView(errnoPointer);
  library = opened;
  return opened.symbols;
}

/**
 * errno of the JS thread, as the last synchronous libc call left it. Read it
 * right after the call: the next call may change it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastErrno, libc } from "./library.ts";
 *
 * assert.equal(libc().close(-1), -1);
 * assert.equal(lastErrno(), 9); // EBADF
 * ```
 */
export function lastErrno(): number {
  if (errnoView === null) libc();
  return errnoView!.getInt32();
}

/**
 * Says whether the bindings work here: Linux on x86_64/aarch64, FFI allowed,
 * `libc.so.6` loadable. Opens the library on success (and caches the answer),
 * so test files can call it at top level and pass `ignore: !ok` to tests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ffiAvailable } from "workbook/libc";
 *
 * const ffi = ffiAvailable();
 * assert.ok(ffi.ok, ffi.ok ? "" : `skipping FFI lessons: ${ffi.reason}`);
 * assert.equal(ffiAvailable(), ffi); // asked once, then cached
 * ```
 */
export function ffiAvailable(): FfiAvailability {
  if (availability !== null) return availability;
  try {
    libc();
    availability = { ok: true };
  } catch (error) {
    availability = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  return availability;
}

// Where FFI is already allowed, open the library now, while the module loads:
// a first use inside a test would otherwise count as a leak for the test
// sanitizer (`sanitizeResources`, on in this workbook), whose tests and doc
// examples then need no top-level `ffiAvailable()` of their own. Without the
// permission, nothing happens here, so importing never prompts for it.
if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") ffiAvailable();
