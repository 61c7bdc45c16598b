/**
 * The catalogue: the one list of the workbook's lessons. The runner, the
 * grading harness, the self-check and the docs all read it; nothing else
 * hard-codes which lessons exist.
 *
 * @module
 */

/** What a lesson's grading (and its programs) may touch. Least privilege: ask for no more. */
export interface LessonPermissions {
  /** Hosts for `--allow-net` (ports open): loopback only. */
  net: string[];
  /** Needs a scratch directory under the system temp dir (unix socket files, files to stream). */
  tmp?: boolean;
  /** Extra paths to read, e.g. `/proc/net` for the TCP states lesson. */
  read?: string[];
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
  /** Progressive hints: `deno task hint N` shows the next one each time. */
  hints: string[];
  /** Topics of the classic socket material this lesson covers. */
  seeds: string[];
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
      },
      {
        name: "fetch",
        file: "fetch_greeting.ts",
        about: "connects to --host/--port and prints the greeting",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]"], tmp: true },
    hints: [
      "Deno.listen({ hostname, port: 0 }) asks the kernel for a free ephemeral port; listener.addr tells you which one it picked.",
      "Deno.Addr is a union: narrow it on addr.transport ('tcp', 'udp', 'unix', 'unixpacket') before reading hostname/port or path.",
      "IPv6 literals need brackets next to a port: [::1]:8080. Without them the colons are ambiguous.",
      "A Unix socket is a file: Deno.listen({ transport: 'unix', path }) creates it. Deno deletes it on close(), a crashed program does not: check for a stale socket file with Deno.lstat before listening.",
      "Read the greeting with a loop: conn.read(buffer) returns a number of bytes, or null at end of stream. One read is not the whole message.",
      "Catch Deno.errors.AddrInUse and throw your own AddressInUseError that names the address.",
    ],
    seeds: [
      "layers and the client/server model",
      "address families AF_INET, AF_INET6, AF_UNIX",
      "socket types SOCK_STREAM and SOCK_DGRAM",
      "ports and ephemeral ports",
      "bind, listen, accept, connect",
      "address already in use",
    ],
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
        about: "sends a line to --host/--port and prints the reply",
      },
    ],
    permissions: { net: ["127.0.0.1"] },
    hints: [],
    seeds: [
      "connect, send, recv",
      "replies arrive in pieces",
      "send may be partial: sendall",
      "decode bytes: UTF-8, GBK",
      "connection refused",
    ],
  },
  {
    id: "03",
    slug: "03-tcp-server",
    title: "A TCP server: serial, then a task per connection",
    topic: "TCP server",
    builds: "the uppercase/ack server, serial and concurrent, surviving resets",
    files: ["server.ts"],
    programs: [
      { name: "serial", file: "server.ts", about: "the serial uppercase server" },
      {
        name: "concurrent",
        file: "server.ts",
        about: "the task-per-connection uppercase server (pass --mode concurrent)",
      },
    ],
    permissions: { net: ["127.0.0.1"] },
    hints: [],
    seeds: [
      "socket, bind, listen, accept loop",
      "the uppercase server",
      "thread per connection",
      "EOF and reset clients",
    ],
  },
  {
    id: "04",
    slug: "04-streams-and-framing",
    title: "Streams and framing: one write is not one read",
    topic: "streams and framing",
    builds: "a bounded line reader, length-prefixed frames, streams and file sending",
    files: ["framing.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"], tmp: true },
    hints: [],
    seeds: ["recv(1024)", "partial reads", "makefile", "sendfile", "message framing"],
  },
  {
    id: "05",
    slug: "05-tcp-lifecycle",
    title: "The TCP lifecycle and its states",
    topic: "TCP lifecycle",
    builds: "a /proc/net/tcp observer that shows LISTEN, ESTABLISHED, TIME_WAIT, CLOSE_WAIT",
    files: ["tcp_states.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1", "[::1]"], read: ["/proc/net"] },
    hints: [],
    seeds: ["three-way handshake", "four-way close", "TIME_WAIT", "CLOSE_WAIT", "half-close"],
    platforms: ["linux"],
  },
  {
    id: "06",
    slug: "06-chat",
    title: "A multi-client chat server",
    topic: "chat",
    builds: "a broadcast chat server with nicknames and slow-client protection, and its client",
    files: ["chat_server.ts", "chat_client.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"] },
    hints: [],
    seeds: ["thread-per-connection chat", "broadcast", "client registry", "receive thread"],
  },
  {
    id: "07",
    slug: "07-udp",
    title: "UDP: datagrams, and reliability on top",
    topic: "UDP",
    builds: "a UDP echo server and a stop-and-wait client that survives loss and duplicates",
    files: ["udp.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"] },
    hints: [],
    seeds: ["sendto/recvfrom", "datagram boundaries", "no delivery guarantee"],
  },
  {
    id: "08",
    slug: "08-heartbeats",
    title: "Heartbeats and expiry",
    topic: "heartbeats",
    builds: "a UDP chat with heartbeats and expiry, and a TCP ping/pong idle deadline",
    files: ["heartbeat.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"] },
    hints: [],
    seeds: ["UDP chat", "heartbeats", "client expiry", "keepalive"],
  },
  {
    id: "09",
    slug: "09-socketserver",
    title: "A socketserver-style framework",
    topic: "socketserver",
    builds: "request handlers and serial, concurrent, UDP and Unix servers with shutdown",
    files: ["socketserver.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"], tmp: true },
    hints: [],
    seeds: ["socketserver", "BaseRequestHandler", "ThreadingMixIn", "serve_forever/shutdown"],
  },
  {
    id: "10",
    slug: "10-io-models",
    title: "I/O models: blocking, non-blocking, synchronous, asynchronous",
    topic: "I/O models",
    builds: "a non-blocking accept/read loop through libc, and serial vs concurrent measured",
    files: ["io_models.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"], ffi: true },
    hints: [],
    seeds: ["blocking I/O", "non-blocking I/O", "multiplexing", "signal-driven", "async I/O"],
    platforms: ["linux"],
  },
  {
    id: "11",
    slug: "11-select-poll-epoll",
    title: "select, poll and epoll",
    topic: "select/poll/epoll",
    builds: "one-threaded echo servers on select, poll and epoll, and a small event loop",
    files: ["multiplex.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"], ffi: true },
    hints: [],
    seeds: ["select", "poll", "epoll", "level- and edge-triggered", "FD_SETSIZE"],
    platforms: ["linux"],
  },
  {
    id: "12",
    slug: "12-coroutines",
    title: "Coroutines from the ground up",
    topic: "coroutines",
    builds: "generator coroutines, a scheduler, and a tiny gevent on the lesson-11 event loop",
    files: ["coroutines.ts"],
    programs: [],
    permissions: { net: ["127.0.0.1"], ffi: true },
    hints: [],
    seeds: ["greenlet switch", "gevent", "monkey-patching", "async/await"],
    platforms: ["linux"],
  },
];

/**
 * Finds a lesson by `3`, `"03"`, `"03-tcp-server"` or `"tcp-server"`.
 *
 * @example
 * ```ts
 * import { findLesson } from "workbook";
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
