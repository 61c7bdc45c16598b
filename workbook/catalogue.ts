/**
 * The catalogue: the one list of the workbook's lessons. The runner, the
 * grading harness, the self-check and the docs all read it; nothing else
 * hard-codes which lessons exist.
 *
 * @module
 */

/** What a lesson's grading (and its programs) may touch. Least privilege: ask for no more. */
export interface LessonPermissions {
  /**
   * Hosts for `--allow-net` (ports open): loopback only — 127.0.0.1, ::1 and localhost, so
   * every program works with `--host` set to any of them.
   */
  net: string[];
  /** Needs a scratch directory under the system temp dir (unix socket files, files to stream). */
  tmp?: boolean;
  /** Extra paths to read (outside the project). Deno refuses anything under /proc to plain reads. */
  read?: string[];
  /**
   * Programs the lesson may start (`--allow-run`), e.g. `cat` for the TCP states lesson:
   * Deno 2 reads files under /proc only with --allow-all, `cat` reads them for less.
   */
  run?: string[];
  /** Calls libc through FFI (the I/O model lessons). */
  ffi?: boolean;
}

/** A standalone program of a lesson: `deno task run N NAME --port 9000`. */
export interface LessonProgram {
  /** Name used on the command line, e.g. `server`. */
  name: string;
  /** File inside the lesson folder whose `import.meta.main` block runs it. */
  file: string;
  /** One line for `deno task run N` listings. */
  about: string;
  /** For servers: how the hostile battery talks to it (`deno task battery N NAME`). */
  battery?: BatteryProfile;
  /** What this program needs beyond the lesson's permissions (grading never gets these). */
  extra?: ProgramExtras;
}

/** Permissions one program needs on top of its lesson's, e.g. a bench that writes a chart. */
export interface ProgramExtras {
  /** Paths (relative to the project root) the program may write, e.g. `docs/charts`. */
  write?: string[];
  /** Programs it may start (`--allow-run`), e.g. `deno` for a process per connection. */
  run?: string[];
}

/** How the hostile battery (`deno task battery`) talks to a server. */
export interface BatteryProfile {
  /**
   * What "served" means: `greeting` (writes, then closes), `reply` (a line per line),
   * `reply-at-eof` (answers after the client's half-close), `broadcast` (a line reaches the
   * others), `frames` (length-prefixed echo), `udp-echo`, `udp-request` (`ID\nPAYLOAD`),
   * `udp-chat` (a datagram reaches the other members).
   */
  kind:
    | "greeting"
    | "reply"
    | "reply-at-eof"
    | "broadcast"
    | "frames"
    | "udp-echo"
    | "udp-request"
    | "udp-chat";
  /** Lines a client sends first to be served (`{name}` is replaced), e.g. `/nick {name}`. */
  hello?: string[];
  /** Extra program flags for the battery's run. */
  flags?: string[];
  /** Serves one client at a time by design: slowloris and a reader that never reads do not apply. */
  oneAtATime?: boolean;
}

/** One lesson of the workbook. */
export interface Lesson {
  /** Two digits, e.g. `"03"`. */
  id: string;
  /** Folder name under lessons/, solutions/, tests/bad/ and docs/, e.g. `"03-tcp-server"`. */
  slug: string;
  /** Title shown in reports. */
  title: string;
  /** Short topic for the curriculum table. */
  topic: string;
  /** What the learner builds, for the curriculum table. */
  builds: string;
  /** Files the learner edits, relative to `lessons/<slug>/`. */
  files: string[];
  /** Standalone programs (servers and clients) of the lesson. */
  programs: LessonProgram[];
  /** Permissions for grading and for the programs. */
  permissions: LessonPermissions;
  /** Operating systems the lesson runs on; elsewhere the suite skips with a message. */
  platforms?: (typeof Deno.build.os)[];
  /** Overall grading deadline in ms (default {@linkcode DEFAULT_LESSON_BUDGET_MS}). */
  budgetMs?: number;
}

/** Overall grading deadline of one lesson unless the lesson sets its own. */
export const DEFAULT_LESSON_BUDGET_MS = 30_000;

/** Every lesson, in order. */
export const lessons: readonly Lesson[] = [
  {
    id: "01",
    slug: "01-sockets",
    title: "Sockets: addresses, families and ports",
    topic: "sockets",
    builds: "TCP listeners on 127.0.0.1 and ::1, a Unix-socket listener, a greeting fetcher",
    files: ["sockets.ts"],
    programs: [
      {
        name: "greeter",
        file: "sockets.ts",
        about: "greets each client with its own address, then closes",
        battery: { kind: "greeting" },
      },
      {
        name: "fetch",
        file: "fetch_greeting.ts",
        about: "connects to --host/--port and prints the greeting",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
  },
  {
    id: "02",
    slug: "02-tcp-client",
    title: "A TCP client that reads the whole reply",
    topic: "TCP client",
    builds: "request/reply client: write-all, read until delimiter or EOF, UTF-8 and GBK decoding",
    files: ["client.ts"],
    programs: [
      {
        name: "client",
        file: "client.ts",
        about: "sends --message (or each typed line), prints each reply; --encoding gbk",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    budgetMs: 60_000,
  },
  {
    id: "03",
    slug: "03-tcp-server",
    title: "A TCP server: serial, then a task per connection",
    topic: "TCP server",
    builds: "the uppercase/ack server, serial and concurrent, surviving resets",
    files: ["server.ts"],
    programs: [
      {
        name: "serial",
        file: "serial.ts",
        about: "the serial ack server: one client at a time (your startSerialServer)",
        battery: { kind: "reply", oneAtATime: true },
      },
      {
        name: "concurrent",
        file: "concurrent.ts",
        about: "the task-per-connection ack server (your startConcurrentServer)",
        battery: { kind: "reply" },
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    // A server that never closes makes every check wait out its deadline (~27 s in all).
    budgetMs: 60_000,
  },
  {
    id: "04",
    slug: "04-streams-and-framing",
    title: "Streams and framing: one write is not one read",
    topic: "streams and framing",
    builds: "a bounded line reader, length-prefixed frames, streams and file sending",
    files: ["framing.ts"],
    programs: [
      {
        name: "lines",
        file: "lines_server.ts",
        about: "answers each line with its number and size; --max sets the longest line",
        battery: { kind: "reply", flags: ["--max", "1024"] },
      },
      {
        name: "frames",
        file: "frames_server.ts",
        about: "echoes length-prefixed frames (4-byte big-endian length + payload); --max",
        battery: { kind: "frames" },
      },
      {
        name: "sendfile",
        file: "send_file.ts",
        about: "sends --file (a file inside the project) to each client, then closes",
      },
      {
        name: "bench",
        file: "bench.ts",
        about: "sends a 32 MiB file over loopback six ways (read sizes, pipeTo, whole file); times",
        extra: { write: [".workbook/bench"] },
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
    budgetMs: 60_000,
  },
  {
    id: "05",
    slug: "05-tcp-lifecycle",
    title: "The TCP lifecycle and its states",
    topic: "TCP lifecycle",
    builds: "a /proc/net/tcp observer that shows LISTEN, ESTABLISHED, TIME_WAIT, CLOSE_WAIT",
    files: ["tcp_states.ts"],
    programs: [
      {
        name: "watch",
        file: "watch.ts",
        about: "prints the TCP states on --port as they change (your socketsOnPort)",
      },
      {
        name: "server",
        file: "reply_server.ts",
        about: "replies once the client half-closes; --mode forget | hangup (closes first)",
        battery: { kind: "reply-at-eof" },
      },
      {
        name: "request",
        file: "request.ts",
        about: "sends --text with your requestWithHalfClose and prints the reply",
      },
    ],
    // Deno reads nothing under /proc without --allow-all, even with --allow-read=/proc/net:
    // the toolkit's readProcNet runs `cat` instead, so `cat` is all this lesson may start.
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], run: ["cat"] },
    platforms: ["linux"],
    budgetMs: 45_000,
  },
  {
    id: "06",
    slug: "06-chat",
    title: "A multi-client chat server",
    topic: "chat",
    builds: "a broadcast chat server with nicknames and slow-client protection, and its client",
    files: ["chat_server.ts", "chat_client.ts"],
    programs: [
      {
        name: "server",
        file: "chat_server.ts",
        about: "the chat server (--max-line BYTES --max-queue BYTES); join with nc and /nick NAME",
        battery: { kind: "broadcast", hello: ["/nick {name}"] },
      },
      {
        name: "client",
        file: "chat_client.ts",
        about: "the chat client: --nick NAME; type lines, /quit or Ctrl-D to leave",
      },
      {
        name: "bench",
        file: "chat_bench.ts",
        about: "50 clients × 50 messages through your server; prints delivered count and time",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    budgetMs: 120_000,
  },
  {
    id: "07",
    slug: "07-udp",
    title: "UDP: datagrams, and reliability on top",
    topic: "UDP",
    builds: "a UDP echo server and a stop-and-wait client that survives loss and duplicates",
    files: ["udp.ts"],
    programs: [
      {
        name: "echo",
        file: "udp.ts",
        about: "UDP echo server: each datagram back to its sender",
        battery: { kind: "udp-echo" },
      },
      {
        name: "server",
        file: "server.ts",
        about: "request server: runs each request once, replays the reply to repeats (--cache N)",
        battery: { kind: "udp-request" },
      },
      {
        name: "client",
        file: "client.ts",
        about: "stop-and-wait client: sends words or stdin lines (--timeout-ms, --tries)",
      },
      {
        name: "bench",
        file: "bench.ts",
        about:
          "500 requests through a proxy with 20% loss, duplicates and reordering; prints figures",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    budgetMs: 60_000,
  },
  {
    id: "08",
    slug: "08-heartbeats",
    title: "Heartbeats and expiry",
    topic: "heartbeats",
    builds: "a UDP chat with heartbeats and expiry, and a TCP ping/pong idle deadline",
    files: ["heartbeat.ts"],
    programs: [
      {
        name: "server",
        file: "heartbeat.ts",
        about: "the UDP chat server with expiry (--timeout MS, default 3000)",
        battery: { kind: "udp-chat", hello: ["hb"] },
      },
      {
        name: "client",
        file: "chat_client.ts",
        about: "UDP chat client: sends typed lines, prints messages, heartbeats (--interval MS)",
      },
      {
        name: "ping-server",
        file: "ping_server.ts",
        about:
          "TCP echo server with PING/PONG idle deadline (--idle MS --pong MS --max-line BYTES)",
        battery: { kind: "reply" },
      },
      {
        name: "ping-client",
        file: "ping_client.ts",
        about: "TCP client that answers PING with PONG (add the word silent to never answer)",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    budgetMs: 40_000,
  },
  {
    id: "09",
    slug: "09-socketserver",
    title: "A socketserver-style framework",
    topic: "socketserver",
    builds: "request handlers and serial, concurrent, UDP and Unix servers with shutdown",
    files: ["socketserver.ts"],
    programs: [
      {
        name: "echo",
        file: "echo.ts",
        about: "concurrent TCP echo server on your framework; Ctrl-C shuts it down gracefully",
        battery: { kind: "reply" },
      },
      {
        name: "broadcast",
        file: "broadcast.ts",
        about:
          "broadcast echo server: each line goes to every client (--max-line N, --max-queue N)",
        battery: { kind: "broadcast" },
      },
      {
        name: "per-connection",
        file: "per_connection_bench.ts",
        about: "a task, a Worker, a deno process per connection: connections/s and memory of each",
        // The process model starts a `deno` child per connection (ForkingMixIn, the Deno way).
        extra: { run: ["deno"] },
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
    // A server that is serial where it should be concurrent fails seven checks on 2 s waits.
    budgetMs: 60_000,
  },
  {
    id: "10",
    slug: "10-io-models",
    title: "I/O models: blocking, non-blocking, synchronous, asynchronous",
    topic: "I/O models",
    builds: "a non-blocking accept/read loop through libc, and serial vs concurrent measured",
    files: ["io_models.ts"],
    programs: [
      {
        name: "polling",
        file: "io_models.ts",
        about: "your polling echo server on a raw non-blocking socket; logs its wasted calls",
        battery: { kind: "reply", oneAtATime: true },
      },
      {
        name: "slow",
        file: "slow_server.ts",
        about: "answers each client after --delay-ms (default 2000); --mode serial|concurrent",
      },
      {
        name: "bench",
        file: "bench.ts",
        about: "wasted calls of polling vs poll(), a blocking call's freeze, serial vs concurrent",
        extra: { write: ["docs/charts"] },
      },
      {
        name: "cpu",
        file: "cpu_bench.ts",
        about: "a CPU-heavy handler run inline, sliced, or in a Worker: light clients' latency",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], ffi: true },
    platforms: ["linux"],
    // A loop that spins and swallows the watchdog's errors runs each polling check out (8 s).
    budgetMs: 45_000,
  },
  {
    id: "11",
    slug: "11-select-poll-epoll",
    title: "select, poll and epoll",
    topic: "select/poll/epoll",
    builds: "one-threaded echo servers on select, poll and epoll, and a small event loop",
    files: ["multiplex.ts"],
    programs: [
      {
        name: "echo",
        file: "multiplex.ts",
        about: "your echo server; --mode select|poll|epoll|epoll-et (default epoll)",
        battery: { kind: "reply" },
      },
      {
        name: "bench",
        file: "bench.ts",
        about:
          "cost of one wait vs idle fds (select/poll/epoll), and echo throughput vs Deno.listen",
        extra: { write: ["docs/charts"] },
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], ffi: true },
    platforms: ["linux"],
    // A stalled server makes a check wait out its longest deadline (10 s for 1 MiB).
    budgetMs: 120_000,
  },
  {
    id: "12",
    slug: "12-coroutines",
    title: "Coroutines from the ground up",
    topic: "coroutines",
    builds: "generator coroutines, a scheduler, and a tiny gevent on the lesson-11 event loop",
    files: ["coroutines.ts"],
    programs: [
      {
        name: "echo",
        file: "coroutines.ts",
        about: "the green echo server: one coroutine per connection, one thread",
        battery: { kind: "reply" },
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], ffi: true },
    platforms: ["linux"],
    budgetMs: 60_000,
  },
];

/**
 * Finds a lesson by `3`, `"03"`, `"03-tcp-server"` or `"tcp-server"`.
 *
 * @example
 * ```ts
 * import { findLesson } from "./catalogue.ts";
 *
 * console.log(findLesson("3")?.slug); // "03-tcp-server"
 * ```
 */
export function findLesson(key: string | number): Lesson | undefined {
  const text = String(key).trim().toLowerCase();
  const number = /^\d+$/.test(text) ? text.padStart(2, "0") : undefined;
  return lessons.find((lesson) =>
    lesson.id === number || lesson.slug === text || lesson.slug.slice(3) === text
  );
}

/**
 * The lesson for `key`, or an error that lists the lessons there are.
 *
 * @example
 * ```ts
 * import { getLesson } from "workbook";
 *
 * console.log(getLesson("01").title);
 * ```
 */
export function getLesson(key: string | number): Lesson {
  const lesson = findLesson(key);
  if (!lesson) {
    throw new Error(
      `no lesson "${key}". Lessons: ${
        lessons.map((l) => `${Number(l.id)} (${l.slug})`).join(", ")
      }`,
    );
  }
  return lesson;
}

/** Path of the lesson's doc, relative to the project root. */
export function docPath(lesson: Lesson): string {
  return `docs/${lesson.slug}.md`;
}
