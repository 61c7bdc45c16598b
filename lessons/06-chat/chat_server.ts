/**
 * Lesson 06 — a multi-client chat server.
 *
 * Every connected client has a name; every line it types goes to all the
 * *other* clients as `name> text`. Clients join with `/nick NAME`, rename with
 * `/nick NAME`, leave with `/quit` — or by vanishing (EOF, reset), which must
 * not disturb anyone else. A client that stops reading must not stall the
 * others either: each client has a bounded outgoing queue (an
 * {@linkcode Outbox}), and a client whose queue is full is dropped.
 *
 * Read docs/06-chat.md first; `deno task lesson 6` grades your work. The
 * exact lines the server sends are in {@linkcode say}: use them.
 *
 * @module
 */
import {
  ACCEPT_PAUSE_MS,
  type ByteWriter,
  closeQuietly,
  isConnectionGone,
  isOutOfDescriptors,
  LineTooLongError,
  MAX_ACCEPT_PAUSE_MS,
  parseProgramArgs,
  programLogger,
  readLines,
  setupLogging,
  sleep,
  untilInterrupted,
  writeAll,
} from "workbook";

const log = programLogger("chat");

/** Longest line a client may send, in bytes, unless the server is told otherwise. */
export const DEFAULT_MAX_LINE_BYTES = 1024;

/** Most bytes waiting in one client's outbox before that client is dropped, by default. */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024;

/** A valid name: 1 to 16 letters, digits, `_` or `-`. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,16}$/;

/**
 * Every line the server sends, without its `\n` (the {@linkcode Outbox} adds
 * it). `* …` lines are notices, `! …` lines are errors for one client only.
 */
export const say = {
  /** To a client that joined (its first `/nick`). */
  welcome: (name: string) => `* welcome ${name}`,
  /** To everyone else when a client joins. */
  joined: (name: string) => `* ${name} joined`,
  /** To a client that renamed itself. */
  youAreNow: (name: string) => `* you are now ${name}`,
  /** To everyone else when a client renames itself. */
  renamed: (from: string, to: string) => `* ${from} is now ${to}`,
  /** A chat message, to everyone but its sender. */
  message: (name: string, text: string) => `${name}> ${text}`,
  /** To everyone else when a client quits or vanishes (EOF, reset, line too long). */
  left: (name: string) => `* ${name} left`,
  /** To everyone else when a client is dropped because its outbox is full. */
  dropped: (name: string) => `* ${name} dropped (too slow)`,
  /** To a client that sent `/quit`, just before the server closes its connection. */
  bye: () => "* bye",
  /** To a client that talks before its first `/nick`. */
  joinFirst: () => "! join first: /nick NAME",
  /** To a client that asks for a name not matching {@linkcode NAME_PATTERN}. */
  badName: () => "! bad name: use 1 to 16 letters, digits, _ or -",
  /** To a client that asks for a name someone else has. */
  nameTaken: (name: string) => `! name taken: ${name}`,
  /** To a client that sends `/something` the server does not know. */
  unknownCommand: (command: string) => `! unknown command ${command} (try /nick NAME or /quit)`,
  /** To a client whose line is not valid UTF-8; the line is not sent on. */
  invalidUtf8: () => "! invalid UTF-8, line ignored",
  /** To a client whose line is too long, just before the server closes its connection. */
  tooLong: (maxLineBytes: number) => `! line too long (max ${maxLineBytes} bytes), bye`,
} as const;

const utf8 = new TextEncoder();

/** Joins byte arrays into one (one write instead of many). */
function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * One client's outgoing queue, with its own writer loop: the rest of the
 * server hands lines to {@linkcode Outbox.offer} and never waits for a
 * client's socket. That is what keeps one slow reader from stalling everyone.
 *
 * Lifecycle: open → (`end()`: write what is queued, then stop) → stopped;
 * `abort()` stops at once and throws the queue away. After a write fails (the
 * client is gone) the outbox stops too.
 */
export class Outbox {
  readonly #writer: ByteWriter;
  readonly #maxQueuedBytes: number;
  /** Encoded lines waiting to be written, oldest first. */
  #queue: Uint8Array[] = [];
  /** Bytes in `#queue` (not counting a batch being written right now). */
  #queuedBytes = 0;
  #state: "open" | "ending" | "stopped" = "open";
  /** Resolves the writer loop's wait for work; set while the loop sleeps. */
  #wake: (() => void) | undefined;
  /** Settles when the writer loop has stopped. */
  readonly done: Promise<void>;

  /**
   * @param writer where the lines go: the client's `Deno.Conn`
   * @param maxQueuedBytes most bytes that may wait in the queue
   */
  constructor(writer: ByteWriter, maxQueuedBytes: number) {
    this.#writer = writer;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.done = this.#writeLoop();
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queues `line` plus `\n` (UTF-8) and wakes the writer loop. Never waits.
   *
   * Returns `false`, queuing nothing, when the line would take the queue past
   * `maxQueuedBytes`: the client is not keeping up, and the caller drops it.
   * Once the outbox is ending or stopped, queues nothing and returns `true`
   * (nobody will read it, but there is nothing to drop either).
   */
  offer(line: string): boolean {
    throw new TodoError("Outbox.offer");
  }

  /** Accepts no more lines, writes what is queued, then stops. Resolves when it has stopped. */
  end(): Promise<void> {
    if (this.#state === "open") this.#state = "ending";
    this.#wakeUp();
    return this.done;
  }

  /** Stops now, throwing away what is queued (the client is being dropped). */
  abort(): void {
    this.#state = "stopped";
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * The writer loop, started by the constructor: until the outbox stops,
   * take *everything* queued (one write for many lines), `writeAll` it, and
   * repeat; with nothing queued, sleep until `offer`, `end` or `abort` wakes
   * it (`await new Promise((resolve) => this.#wake = resolve)`). When ending
   * and the queue is empty, stop. When a write throws, the client is gone:
   * stop, and let the client's reader notice the end on its side.
   */
  async #writeLoop(): Promise<void> {
    throw new TodoError("Outbox.writeLoop");
  }
}

/** What the room needs from a client: a name, a way to queue a line, a way to hang up. */
export interface Member {
  /** `""` until the client joins. */
  name: string;
  /** Queues a line for this client; `false` when its outbox is full. Never waits. */
  send(line: string): boolean;
  /** Closes the client's connection (its reader then ends). */
  hangUp(): void;
}

/** A connected client: its connection and its outbox. Given: nothing to write. */
export class Client implements Member {
  name = "";
  constructor(readonly conn: Deno.Conn, readonly outbox: Outbox) {}

  send(line: string): boolean {
    return this.outbox.offer(line);
  }

  hangUp(): void {
    this.outbox.abort();
    closeQuietly(this.conn);
  }
}

/**
 * The registry of joined clients, in the order they joined, and who gets
 * which line. No method here waits for anything: a line is *queued* for
 * each recipient, and queuing either succeeds at once or says "full".
 */
export class ChatRoom {
  #members: Member[] = [];

  /** The joined members, in join order (a copy). */
  get members(): Member[] {
    return [...this.#members];
  }

  /** Names of the joined members, in join order. */
  get names(): string[] {
    return this.#members.map((member) => member.name);
  }

  /** Whether `member` is in the room. */
  includes(member: Member): boolean {
    return this.#members.includes(member);
  }

  /** Whether a member already has this name. */
  nameTaken(name: string): boolean {
    return this.#members.some((member) => member.name === name);
  }

  /** Takes `member` out of the registry; false if it was not in. */
  #remove(member: Member): boolean {
    const index = this.#members.indexOf(member);
    if (index < 0) return false;
    this.#members.splice(index, 1);
    return true;
  }

  /**
   * Adds `member` under `name` (already checked: valid and free). The new
   * member gets `say.welcome(name)`; every other member `say.joined(name)`.
   */
  join(member: Member, name: string): void {
    throw new TodoError("ChatRoom.join");
  }

  /**
   * Renames a member (the new name is already checked). It gets
   * `say.youAreNow(name)`; every other member `say.renamed(old, name)`.
   */
  rename(member: Member, name: string): void {
    throw new TodoError("ChatRoom.rename");
  }

  /**
   * Removes `member` (it quit or vanished) and tells the others
   * `say.left(name)`. Returns false, telling nobody, if it was not in the
   * room (never joined, or already dropped).
   */
  leave(member: Member): boolean {
    throw new TodoError("ChatRoom.leave");
  }

  /**
   * Drops a member whose outbox is full: removes it, hangs up on it, and
   * tells the others `say.dropped(name)`. Does nothing if it is not in.
   */
  drop(member: Member): void {
    throw new TodoError("ChatRoom.drop");
  }

  /**
   * Queues `line` for every member except `except`, then drops each member
   * whose `send` returned false.
   *
   * Never change the registry while you walk it: iterate over a copy
   * (`[...this.#members]`), collect the full ones, and drop them after the
   * loop. Dropping inside the loop splices the array under the loop's feet,
   * and the member right after the dropped one is skipped.
   */
  broadcast(line: string, except?: Member): void {
    throw new TodoError("ChatRoom.broadcast");
  }
}

/** Limits a server applies to every client. */
export interface ChatLimits {
  /** Longest line a client may send, in bytes. */
  maxLineBytes: number;
  /** Most bytes that may wait in one client's outbox. */
  maxQueuedBytes: number;
}

/**
 * Serves one client from connect to disconnect. Given a fresh `conn`:
 *
 * 1. make a {@linkcode Client} with an {@linkcode Outbox} on `conn`;
 * 2. read lines with `readLines(conn, limits.maxLineBytes)`, and decode each
 *    with a *fatal* UTF-8 decoder; bad bytes: reply `say.invalidUtf8()`;
 * 3. `/quit`: reply `say.bye()` and finish. `/nick NAME`: check the name
 *    (`NAME_PATTERN`, `room.nameTaken`); reply `say.badName()` or
 *    `say.nameTaken(NAME)`, else `room.join` (first time) or `room.rename`.
 *    Another `/word`: `say.unknownCommand(word)`. Text before joining:
 *    `say.joinFirst()`. Other text: `room.broadcast(say.message(name, text),
 *    client)`; an empty line is ignored;
 * 4. a `LineTooLongError`: reply `say.tooLong(limits.maxLineBytes)` and finish;
 * 5. the client vanishing (EOF, a reset, the connection closed by a hang-up)
 *    is a normal end, not an error (`isConnectionGone(error)`);
 * 6. however it ends: `room.leave(client)`, then `await client.outbox.end()`
 *    (so `* bye` and the last errors are written), then close `conn`.
 *
 * Replies go to this client only (`client.send`). Only "joined" means in the
 * room: use `room.includes(client)`, not the name (a dropped client keeps it).
 */
export async function handleClient(
  room: ChatRoom,
  conn: Deno.Conn,
  limits: ChatLimits,
): Promise<void> {
  throw new TodoError("handleClient");
}

/** Options of {@linkcode startChatServer}. */
export interface ChatServerOptions extends Partial<ChatLimits> {
  /** Default `127.0.0.1`. */
  hostname?: string;
  /** Default 0: the kernel picks a free port. */
  port?: number;
  /**
   * Waits out one pause of accepting while out of descriptors (default
   * {@linkcode sleep}); the grader passes its own, to see every pause.
   */
  pause?: (ms: number) => Promise<void>;
}

/** A running chat server. */
export interface ChatServer {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Its registry of joined clients. */
  readonly room: ChatRoom;
  /** Stops accepting, closes every connection, and resolves once every handler has finished. */
  close(): Promise<void>;
}

/**
 * Listens on `hostname:port` and serves each client with
 * {@linkcode handleClient}, concurrently (lesson 03's accept loop). Keep
 * every open connection and every handler's promise, so `close()` can close
 * them and wait for the handlers. A client that resets before it is accepted
 * makes `accept()` throw: that must not end the loop. Out of file descriptors
 * (`isOutOfDescriptors(error)`), the client stays queued: await
 * `options.pause(ms)` ({@linkcode ACCEPT_PAUSE_MS} first, doubling up to
 * {@linkcode MAX_ACCEPT_PAUSE_MS}) and accept again; warn once per episode
 * (its first failure); once `accept()` works, the next episode starts over.
 */
export function startChatServer(options: ChatServerOptions = {}): ChatServer {
  throw new TodoError("startChatServer");
}

/** The chat server program: `deno task run 6 server --port 9000`, then `nc 127.0.0.1 9000`. */
async function main() {
  const args = parseProgramArgs(Deno.args, { port: 9000 }, ["max-line", "max-queue"]);
  await setupLogging(args.verbose ? "debug" : "info");
  const server = startChatServer({
    hostname: args.host,
    port: args.port,
    maxLineBytes: Number(args.extra["max-line"] ?? DEFAULT_MAX_LINE_BYTES),
    maxQueuedBytes: Number(args.extra["max-queue"] ?? DEFAULT_MAX_QUEUED_BYTES),
  });
  log.info("chat server on {host}:{port}; join with /nick NAME", {
    host: server.addr.hostname,
    port: server.addr.port,
  });
  await untilInterrupted();
  await server.close();
  log.info("stopped");
}

if (import.meta.main) await main();
