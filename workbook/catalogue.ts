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
        battery: { kind: "greeting" },
      },
      {
        name: "fetch",
        file: "fetch_greeting.ts",
        about: "connects to --host/--port and prints the greeting",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
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
        about: "sends --message (or each typed line), prints each reply; --encoding gbk",
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"] },
    hints: [
      "Every function here is a loop around one call that does less than you asked: write() may take part of the bytes, read() returns whatever has arrived. Loop on what they return, never on what you hoped for.",
      "writeAll: write() resolves to how many bytes it took. for (let offset = 0; offset < bytes.length;) offset += await writer.write(bytes.subarray(offset));",
      "readUntil: look for delim (the delimiter as bytes) in this.#pending first: an earlier read may have brought the whole reply already. Not there? Read a chunk with this.#readChunk(), append it with concatBytes, look again with indexOfBytes. null from a read means EOF: throw new IncompleteReplyError(the bytes you have, delim).",
      "When you find delim at index at, the reply is #pending.slice(0, at + delim.length) and #pending becomes #pending.slice(at + delim.length) — those bytes are the next reply, never drop them. For a 2-byte delimiter like \\r\\n, search from #pending.length - delim.length + 1 (the length before you append a read), since \\r may have come in the previous read.",
      "Limits: a found reply longer than maxBytes, or #pending.length >= maxBytes with no delimiter in it, is a ReplyTooLongError — throw at once instead of reading more. readToEnd: start from #pending (empty it), read until null, and throw once the total passes maxBytes.",
      "connectTo: try { return await Deno.connect({ hostname, port }); } catch (error) { if (error instanceof Deno.errors.ConnectionRefused) throw new ServerUnavailableError(address, { cause: error }); throw error; }",
      "LineClient.request: writeAll(this.conn, new TextEncoder().encode(line + '\\n')), then this.reader.readUntil(NEWLINE, this.maxReplyBytes), then decode once: new TextDecoder(this.encoding).decode(reply without its last byte). request(): const client = await LineClient.connect(address, options); try { return await client.request(line); } finally { client.close(); }",
    ],
    seeds: [
      "connect, send, recv",
      "replies arrive in pieces",
      "send may be partial: sendall",
      "decode bytes: UTF-8, GBK",
      "connection refused",
    ],
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
    hints: [
      "Start with upperAscii: a loop over the bytes; only 0x61–0x7a ('a'–'z') change, by subtracting 0x20. Never decode to a string first.",
      "handleConnection keeps the bytes of an unfinished line between reads. After each read, answer every complete line (look for 0x0a with indexOf), keep the rest for the next read. One read can hold half a line or three lines.",
      "The ways a connection ends: read() returns null (EOF: answer the leftover line, return 'eof'); read or write throws ConnectionReset/BrokenPipe/ConnectionAborted ('reset'); Interrupted/BadResource ('closed': your server closed it). Close conn in a finally so every path closes it.",
      "The serial server is `while (!closing) { conn = await listener.accept(); await handleConnection(conn); }`, with a try/catch around each of the two awaits: a client that reset while it was queued makes accept() throw NotConnected, and that must not end the loop.",
      "Out of descriptors, accept() throws at once again and again: back off. Keep the last pause beside the loop (0 while accept() works); when isOutOfDescriptors(error), warn only if it is still 0, pause = pause ? min(pause * 2, MAX_ACCEPT_PAUSE_MS) : ACCEPT_PAUSE_MS, await (options.pause ?? sleep)(pause), continue. After an accept() that works, set it back to 0.",
      "The concurrent server is the same loop without the `await` before the handler. Keep each live conn and its handler's promise in a Map, and give the handler its own try/catch: nobody awaits it, so an error would otherwise be an unhandled rejection that kills the program.",
      "close(): set a closing flag, listener.close() (the pending accept() then fails: leave the loop), close every live conn (their pending reads fail with Interrupted), then await the loop and Promise.all of the handlers.",
    ],
    seeds: [
      "socket, bind, listen, accept loop",
      "the uppercase server",
      "thread per connection",
      "EOF and reset clients",
    ],
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
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
    hints: [
      "A read returns whatever has arrived: part of a line, or three lines and half of a fourth. Keep the bytes you have not used yet in a buffer and look for the end of a message there.",
      "In readChunks, yield buffer.slice(0, n), not buffer.subarray(0, n): the next read overwrites the buffer while the caller still holds the chunk. In writeAll, loop: offset += await writer.write(bytes.subarray(offset)).",
      "LineDecoder: push() appends a copy to #pending. nextLine() looks for 0x0a with #pending.indexOf(0x0a); the line is the bytes before it (minus a \\r just before it), and #pending becomes the bytes after it — do not drop them.",
      "Decode a line only once it is complete: new TextDecoder('utf-8', { fatal: true }).decode(lineBytes) keeps split characters whole and throws a TypeError for bad bytes, which you turn into InvalidUtf8Error(lineNumber).",
      "The limit is on bytes, checked before any newline arrives: with no newline in #pending, more than maxLineBytes + 1 bytes (or exactly maxLineBytes + 1 not ending in \\r) is already too long. A line of exactly maxLineBytes is fine. finish() returns the bytes left as the last line, or null.",
      "Frames: once 4 bytes are in, new DataView(p.buffer, p.byteOffset, 4).getUint32(0) is the length (big-endian). Compare it with maxFrameBytes right there, before waiting for the payload. At end of stream, any byte left in the decoder means TruncatedFrameError.",
      "The streams: new TransformStream({ transform(chunk, c) { decoder.push(chunk); enqueue every complete item }, flush(c) { decoder.finish(), enqueue the last line } }). sendFile: (await Deno.open(path)).readable.pipeTo(writable, { preventClose: true }), counting the chunks on the way.",
    ],
    seeds: ["recv(1024)", "partial reads", "makefile", "sendfile", "message framing"],
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
    hints: [
      "Start with the pure parts: stateName is a lookup table indexed by the kernel's code, and the kernel counts from 1 (01 ESTABLISHED … 0B CLOSING), so slot 0 of your table stays empty.",
      "Every number in /proc/net/tcp is hex: the state (0A), the port (1F90 = 8080), the address. Number.parseInt(text, 16), never base 10.",
      "An IPv4 address like 0100007F is the 4 address bytes read as one number in little-endian order and printed in hex: its bytes come out reversed. new DataView(bytes.buffer).setUint32(0, Number.parseInt(hex, 16), true) puts them back; then bytes.join('.').",
      "IPv6 is the same thing four times: 32 hex digits are four 8-digit words, each reversed on its own. formatIPv6 then makes 8 groups of 16 bits, finds the longest run (≥ 2) of zero groups for `::`, and writes ::ffff:a.b.c.d when the first 10 bytes are 0 and the next 2 are ff.",
      "parseProcNetTcp: line.trim().split(/\\s+/) gives [slot, local, remote, state, …]; skip the header (first field 'sl') and empty lines. socketsOnPort reads BOTH readProcNet('tcp') and readProcNet('tcp6'): a listener on ::1 lives in the second.",
      "waitForState: loop { look; keep only sockets whose local.port is end.port (and remote.port is end.peerPort); return the one in the state; past the deadline throw new StateTimeoutError(end, state, seenStates, timeoutMs); else await a setTimeout of intervalMs }.",
      "requestWithHalfClose: write every byte, then await conn.closeWrite() (not close()), then read until read() returns null, and close in a finally.",
    ],
    seeds: [
      "three-way handshake",
      "four-way close",
      "the eleven TCP states",
      "TIME_WAIT and 2·MSL",
      "CLOSE_WAIT",
      "half-close (shutdown)",
      "SO_REUSEADDR",
    ],
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
    hints: [
      "Work outside in: the suite checks Outbox first, then ChatRoom with stand-in members, then handleClient on one connection, then the whole server, then the client. Each part has its own checks.",
      "Outbox.offer never awaits: encode line + '\\n', refuse (return false) if queuedBytes + its size > maxQueuedBytes, else push it, add its size, and wake the writer loop. The writer loop sleeps on `await new Promise((resolve) => this.#wake = resolve)` when the queue is empty.",
      "The writer loop takes the whole queue at once (one writeAll of all the lines), resets queuedBytes, and loops; a write that throws means the client is gone: leave the loop. end() lets it drain then stop; abort() empties the queue and stops it.",
      "ChatRoom.broadcast: `for (const member of [...this.#members])` — a copy. Skip `except`; when member.send(line) returns false, push the member on a `full` list; after the loop, drop each one. Dropping inside the loop splices the array under the loop and skips the next member.",
      "join: set the name, push, send the welcome to the newcomer, broadcast `* NAME joined` except the newcomer. leave/drop: remove first (return if it was not in), then tell the others; drop also calls member.hangUp().",
      "handleClient: `for await (const bytes of readLines(conn, limits.maxLineBytes))`, decode with `new TextDecoder('utf-8', { fatal: true })` inside try/catch; use room.includes(client) for 'joined'. Catch LineTooLongError (reply, finish) and isConnectionGone errors (just finish); in finally: room.leave(client), await client.outbox.end(), close conn.",
      "runChatClient: start `const receiving = receiveLoop(conn, print, max)` without awaiting it; then loop `await Promise.race([typed.next(), receiving.then(() => 'server closed')])`. A typed line is written with '\\n'; '/quit' or the end of input sends /quit and awaits receiving; 'server closed' calls typed.return() and returns.",
    ],
    seeds: ["thread-per-connection chat", "broadcast", "client registry", "receive thread"],
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
    hints: [
      "One receive() is one datagram, whole, with its sender: const [data, from] = await socket.receive(). Reply with socket.send(bytes, from), never to an address you saved earlier.",
      "receive(buffer) cuts a datagram that does not fit and drops the rest silently. Read into a buffer of maxBytes + 1: if the datagram filled it, it was too long.",
      "A 'connected' socket compares hostname AND port of every sender with the peer's; the grader's stranger also sends from 127.0.0.1.",
      "A receive() cannot be cancelled. In receiveWithin, start one only if #pending holds none, race #pending against a timer, and clear #pending only when it delivered.",
      "request(): take the id once, before the loop; every retransmission sends the same bytes. Inside each try, keep calling receiveWithin(time left) and skip replies whose id is not yours (staleReplies++).",
      "The server's cache key is `${sender}#${id}`, looked up BEFORE running the handler; store the encoded reply, and when map.size > cacheSize delete map.keys().next().value.",
    ],
    seeds: [
      "sendto/recvfrom",
      "datagram boundaries",
      "no delivery guarantee",
      "connect() on a datagram socket",
      "truncated datagrams",
      "timeouts and retransmission",
      "duplicate suppression",
    ],
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
    hints: [
      "Take every reading of the time and every timer from the clock you are given (options.clock ?? systemClock): the grader moves a fake clock by hand, and Date.now() or the global setInterval would never see it move.",
      "The registry is pure bookkeeping: seen() stamps lastSeen = now, expire(now) removes clients with now - lastSeen > timeoutMs, recipients() is everyone but the sender. Test it in your head with plain numbers.",
      "Never splice an array while a forward loop walks it: the next element slides into the slot you just checked and the loop steps over it. Collect the expired clients first (filter), then rebuild the array without them.",
      "Server: after datagramText(), 'quit' removes the sender; 'hb' makes or refreshes a member (registry.seen()); any other text counts only when registry.refresh(from, now) says the sender is a member, and then goes to each of registry.recipients(from) — unless the forwarded line would exceed MAX_UDP_PAYLOAD bytes, when the sender gets TOO_LONG_NOTICE instead. The sweep runs on clock.setInterval, cleared in close().",
      "Client: send 'hb' once at start, then clock.setInterval(beat, intervalMs / 3): the server then tolerates two lost heartbeats. Ignore datagrams whose sender is not the server. close(): clearInterval, send 'quit', close the socket, await the receive loop.",
      "TCP: keep two timers. Every read that returns bytes clears both and arms idle = clock.setTimeout(ping, idleMs); ping() writes PING\\n and arms pong = clock.setTimeout(hangUp, pongTimeoutMs). Chain writes (writing = writing.then(...)) so a PING never lands inside an echoed line.",
    ],
    seeds: ["UDP chat", "heartbeats", "client expiry", "keepalive"],
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
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], tmp: true },
    hints: [
      "Start with BaseRequestHandler.run: await setup(), then handle() inside try, finish() in the finally. Most of the suite runs through it.",
      "serveForever is a loop around handleRequest; handleRequest is: getRequest, then processRequest. The base's processRequest awaits the request's task, which is what makes a server serial.",
      "runRequest builds a task that never rejects: try { await finishRequest } catch { handleError } finally { closeRequest }. Put the task in the in-flight map before you return it; delete it when it settles. One failing request must not reject serveForever.",
      "The concurrent server differs in one method: processRequest starts runRequest without awaiting it and returns at once. Nothing is lost: the task never rejects and the in-flight map holds it for shutdown.",
      'shutdown: set the stopping flag, stopAccepting(), then settledWithin(tasks of the in-flight map, deadlineMs). If that says false, closeRequest() each request still in the map (the handler\'s read fails and it ends), wait once more with settledWithin, close(), and report { outcome: "cut", cut }.',
      "Out of descriptors (isOutOfDescriptors), handleRequest must neither rethrow nor ask again at once: warn when #acceptPauseMs is still 0 (the episode's first failure), set it to ACCEPT_PAUSE_MS or double it (at most MAX_ACCEPT_PAUSE_MS), await this.pause(this.#acceptPauseMs), return true. Once getRequest() works, set it back to 0.",
      "Broadcast never waits for a client: per client, drop it if queuedBytes(conn) + line.length > maxQueueBytes, else push the line on its queue (make one if it has none) and start its writer once: queue.writer ??= this.drain(conn, queue). The writer loops while lines are queued and the client is still in clients: joinBytes(queue.lines.splice(0)), await writeAll, subtract the bytes; catch → dropClient; finally → delete the queue.",
    ],
    seeds: ["socketserver", "BaseRequestHandler", "ThreadingMixIn", "serve_forever/shutdown"],
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
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], ffi: true },
    hints: [
      'Start with makeNonBlocking: sys.fcntl(fd, F_GETFL) gives { value: flags, errno }; write back flags | O_NONBLOCK with sys.fcntl(fd, F_SETFL, …). value -1 means failure: throw new ErrnoError("fcntl", errno).',
      "tryAccept and tryRead are one raw call each (sys.accept4, sys.read) plus a look at errno: EAGAIN (same number as EWOULDBLOCK) → null, EINTR → call again, anything else → throw. read's 0 is end of stream, a real answer: return it.",
      "Linux does not copy O_NONBLOCK from a listener to the sockets accept returns. Ask for it in the call: sys.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC).",
      "The polling loop: while (accepted < clients || open.size > 0) and not aborted: one tryAccept if you still need clients, one tryRead on every open fd, then `await new Promise((r) => setTimeout(r, 0))`. Count into the stats object you were given, right where each call returns.",
      "`await Promise.resolve()` does not yield to the event loop: it continues before any timer or socket gets a turn, so a loop built on it spins forever and the grader's clients never connect. Only a macrotask (setTimeout) lets them in.",
      "blockingEchoOnce is the same work with no retries: accept4 with flags SOCK_CLOEXEC on the blocking listener, sys.read until it returns 0, send every chunk back, close in a finally.",
      "serveSerial is `for (;;) { conn = await listener.accept(); try { await handler(conn) } catch {…} finally { conn.close() } }`; serveConcurrent drops that await, keeps each task's promise in a Set, and awaits Promise.all(set) once accept() fails because the listener closed.",
    ],
    seeds: ["blocking I/O", "non-blocking I/O", "multiplexing", "signal-driven", "async I/O"],
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
      },
    ],
    permissions: { net: ["127.0.0.1", "[::1]", "localhost"], ffi: true },
    hints: [
      'Start with serveReady: read once if readable and the client wantsRead, then flush if it wantsWrite; return false on "reset" or when the client is done. Every level-triggered server uses it.',
      "Every server has the same shape: while (!state.closing) { build what to watch from state.clients; state.watched = those fds; wait; handle the wake pipe (drain), the listener (acceptOne() until null), then each ready client }. Return state.server(loop()).",
      "select has no worker-thread binding: call select(readFds, writeFds, 0) (just look), then await pause(0) after a busy round or a growing pause while idle, so the grader's clients on the same thread can run. Check every new fd against FD_SETSIZE: close the ones >= 1024 and count state.refused++.",
      "A client you are done with must leave everything: state.closeClient(fd) closes AND forgets it. With epoll, EPOLL_CTL_DEL before that. A closed fd left in the select sets is EBADF; in a pollfd list it is POLLNVAL.",
      "Ask for POLLOUT / EPOLLOUT / the write set only while client.wantsWrite; without it, echo that did not fit into the socket is never sent. POLLHUP and POLLERR come unasked: treat them as readable.",
      "Edge-triggered: register clients once with EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET and serve them with serveEdge, which reads until EAGAIN (readReady = false) and flushes until blocked (writeReady = false). The ET listener too: accept until acceptOne() returns null.",
      "EventLoop: #watchers maps fd → { mask, callback }; runOnce waits with epollWaitAsync(epfd, 64, time to the first timer), looks each fd up again before its callback (skip it if gone), then fires due timers. setTimer and stop write a byte into the wake pipe while #waiting is set.",
    ],
    seeds: ["select", "poll", "epoll", "level- and edge-triggered", "FD_SETSIZE"],
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
    hints: [
      "A generator is a coroutine you resume by hand: gen.next(value) runs it to its next yield and the value comes out of that yield; gen.throw(error) makes that yield throw. Everything in this lesson is a loop that decides whose next() to call.",
      "trampoline: keep `current` and `handover`; loop: skip dead greenlets to their parent, return at MAIN, resume current (start(value).next() the first time, then next(value) or throw(error)), then follow what it yielded (a SwitchRequest), or hand its return value / its error to its parent.",
      "step(task): resume with task.resume inside try/catch (a throw → finish(task, 'failed', …), never out of step). Then: done → finish 'done'; nothing yielded → makeReady (back of the queue); sleep → addSleeper; join → ready at once if the other ended, else into other.joiners.",
      "addSleeper inserts by wakeAt (clock.now() + ms), after every sleeper due at the same time or earlier; wakeSleepers takes from the front while wakeAt <= clock.now(). finish() makes every joiner ready with the result, or with { ok: false, error }.",
      "run(): loop { wakeSleepers(); one round over the tasks ready now; if some are ready again: await this.poll(); else if sleepers or I/O waiters: await this.idle(ms to the first sleeper, or Infinity); else return }.",
      "Hub.waitIo: waiting.set(fd, task), task.state = 'waiting', loop.watch(fd, { readable: true } or { writable: true }, () => { loop.unwatch(fd); forget; makeReady(task, { ok: true, value: undefined }) }). The green calls are loops: try the non-blocking call; on null, yield readable(fd) / writable(fd).",
      "The echo server: an acceptor coroutine (const fd = yield* greenAccept(listener.fd); hub.spawn(() => serveConnection(fd))) and serveConnection (greenRead until 0, greenWriteAll each chunk; ECONNRESET/EPIPE → just end; close the fd in finally). close(): hub.kill every task, await their settled.",
    ],
    seeds: ["greenlet switch", "gevent", "monkey-patching", "async/await"],
    platforms: ["linux"],
    budgetMs: 60_000,
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
