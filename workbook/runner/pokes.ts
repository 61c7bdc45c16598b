/**
 * `deno task pokes [N …] [--jobs J] [--show]`: runs the "Poke it yourself" commands of the lesson
 * docs against the reference programs and checks that they still print what
 * the doc says they print.
 *
 * ## The format
 *
 * A runnable poke is a fenced block whose info string has `poke` as its
 * second word (GitHub highlights by the first word only, so it still reads as
 * shell). Inside, `$ ` starts a command, as in a terminal; the lines after it,
 * up to the next `$ ` line, are what the doc promises it prints:
 *
 * ````md
 * ```sh poke
 * $ deno task run 3 serial --port 9000 &            # the server, in the background
 * ... listening on 127.0.0.1:9000
 * $ printf 'hello\n' | nc -N 127.0.0.1 9000
 * ack-HELLO
 * ```
 * ````
 *
 * - **Output** is stdout and stderr together, as a terminal shows them, and must match every
 *   line. `...` inside a line matches anything on that line; a line of just `...` matches any
 *   number of lines (none too). Runs of spaces compare as one space, trailing spaces and
 *   trailing blank lines do not count. The exit status is not checked: the output is.
 * - **Ports**: every number 9000–9099 in a block (commands and output) stands for a port and
 *   is replaced: by the port the program started on it got, or else by a free port. The
 *   doc keeps its fixed, readable port; runs never collide.
 * - **`$ deno task run N PROGRAM … --port 90NN &`**, on a port no earlier command took,
 *   starts the reference program on port 0 (the battery's {@linkcode RunningProgram}), and
 *   the lines after it are promised in its log: they must appear in that order, other lines
 *   between them allowed, in the last 200 lines it printed by the time the block ends and
 *   the program is stopped (SIGTERM, as Ctrl-C). After the last command the runner waits
 *   (within the timeout) for every promised line before the first `stopped` one: a program
 *   prints on its own schedule; `stopped` lines come with the stop. Every other
 *   `deno task run` (a client, or anything on a taken port) runs the reference too: the
 *   runner adds `--solution`.
 * - **Other commands ending in `&`** run in the background until the block ends; their
 *   promised lines are checked like a program's log. The next command waits until a
 *   listening `nc -l` listens, or until a background command shows its first promised line
 *   (a first line of `...` means: others may come first, do not wait — a listener whose
 *   lines come later, say; an `ss` line then waits for it to connect).
 * - **`%N`** is the N-th background command's process, as a job in bash:
 *   `kill -INT %1` is Ctrl-C for the first; the runner then waits for it to exit.
 * - **`/tmp/NAME`** in a block is NAME in a fresh directory of the block's own, removed after.
 * - **`ss` commands** are run again until their output matches (within the timeout): the
 *   kernel's tables change a moment after the event that changes them.
 * - **Each command** runs in its own `bash -c` (no variable carries over to the next line;
 *   a line ending in `\` and a heredoc `<<'EOF' … EOF` belong to the command), with stdin
 *   from /dev/null, NO_COLOR=1, in the project root, within the block's timeout (10 s per
 *   command; `timeout=S` after `poke` changes it).
 * - **Tools**: a block needs each tool of {@linkcode TOOLS} it names (and any listed with
 *   `needs=a,b` after `poke`); when one is missing the block is skipped with what to
 *   install, e.g. `skipped: needs nc (apt-get install netcat-openbsd)`.
 *
 * Each block starts what it needs and stops it again; it ends at the first broken promise.
 * What cannot be scripted stays an ordinary block (without `poke`): it is not run. To write
 * a poke's promised lines, `deno task pokes N --show` prints what each command printed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { docPath, getLesson, type Lesson, lessons as allLessons } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { RunningProgram } from "../battery/program.ts";
import { paint } from "./style.ts";

/** One command of a poke block and the output it promises. */
export interface PokeStep {
  /** 1-based line of the doc the command starts on. */
  line: number;
  /** The command as written (continuation lines and heredoc included, `$ ` removed). */
  command: string;
  /** It ends in `&`: runs in the background until the block ends. */
  background: boolean;
  /** The promised output, one entry per line. */
  expected: string[];
}

/** A runnable poke block of a doc. */
export interface PokeBlock {
  /** The doc, relative to the project root. */
  doc: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Per-command timeout in ms. */
  timeoutMs: number;
  /** Tools the block needs (named in it, or listed with `needs=`). */
  needs: string[];
  /** Its commands, in order, each with the output it promises. */
  steps: PokeStep[];
  /** Set when the block cannot be read; the block then fails with it. */
  problem?: string;
}

/** What running one block came to. */
export interface PokeOutcome {
  /** `poke DOC:LINE`, with the programs the block starts. */
  name: string;
  /** Every promise held (or the block was skipped). */
  ok: boolean;
  /** Not run: a tool is missing, or not Linux. `ok` is true then. */
  skipped?: boolean;
  /** Why it failed or was skipped, or how many commands ran. */
  detail: string;
  /** How long the block took. */
  ms: number;
}

/** Options of {@linkcode pokeOutcomes}. */
export interface PokeOptions {
  /** Whether a tool is installed (default: asks bash). */
  hasTool?: (tool: string) => Promise<boolean>;
  /** Called with each outcome as soon as it is known. */
  onOutcome?: (outcome: PokeOutcome) => void;
  /** Called with what each command printed (`--show`: to write a poke's promised lines from). */
  onOutput?: (step: PokeStep, command: string, output: string[]) => void;
  /** Blocks run at once (default 1). Each block has its own programs, ports and /tmp. */
  jobs?: number;
  /** How a foreground command runs (default: bash in a session of its own). For tests. */
  runCommand?: (script: string, timeoutMs: number) => Promise<ShellResult>;
}

/**
 * Tools a poke may name, with the check that they are usable and what to install.
 * Only these are looked for in commands; others go in `needs=`.
 */
export const TOOLS: Readonly<Record<string, { check: string; install: string }>> = {
  // The docs use OpenBSD netcat's -N (half-close at end of input) and -d.
  nc: {
    check: "command -v nc && nc -h 2>&1 | grep -q OpenBSD",
    install: "apt-get install netcat-openbsd",
  },
  python3: { check: "command -v python3", install: "apt-get install python3" },
  ss: { check: "command -v ss", install: "apt-get install iproute2" },
  // Pokes attach to a running server (`strace -p`): root, or Yama's ptrace_scope 0.
  strace: {
    check: 'command -v strace && strace -o /dev/null true && { [ "$(id -u)" = 0 ] || ' +
      '[ "$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)" = 0 ]; }',
    install: "apt-get install strace; attaching to a running process needs root or " +
      "kernel.yama.ptrace_scope=0",
  },
  curl: { check: "command -v curl", install: "apt-get install curl" },
  pgrep: { check: "command -v pgrep", install: "apt-get install procps" },
  ps: { check: "command -v ps", install: "apt-get install procps" },
};

const DEFAULT_TIMEOUT_MS = 10_000;
const PORT = /(?<![\d.])(90\d\d)(?!\d)/g;
/** `/tmp/` at the start of a path: each block gets a fresh directory for it. */
const TMP = /(?<![\w.\/-])\/tmp\//g;
/** A command (its first line) that ends in `&`, before any `# comment`. */
const BACKGROUND = /(^|[^&])&\s*(#.*)?$/;
/** The trailing `&` (and comment) of a background command. */
const AMPERSAND = /\s*&\s*(#.*)?$/m;
const FENCE = /^(`{3,}|~{3,})\s*(\S*)\s+poke\b(.*)$/;

/**
 * The runnable poke blocks of a doc.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePokes } from "./pokes.ts";
 *
 * const fence = "`".repeat(3);
 * const doc = `text\n${fence}sh poke\n$ echo hi\nhi\n${fence}\n`;
 * const [block] = parsePokes(doc, "docs/x.md");
 * assert.equal(block.steps[0].command, "echo hi");
 * assert.deepEqual(block.steps[0].expected, ["hi"]);
 * ```
 */
export function parsePokes(markdown: string, doc: string): PokeBlock[] {
  const lines = markdown.split("\n");
  const blocks: PokeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(FENCE);
    if (!open) continue;
    const fence = open[1];
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !isClosing(lines[j], fence)) body.push(lines[j++]);
    blocks.push(parseBlock(doc, i + 1, open[3], body, j >= lines.length));
    i = j;
  }
  return blocks;
}

function isClosing(line: string, fence: string): boolean {
  const trimmed = line.trim();
  return trimmed.startsWith(fence) && /^[`~]+$/.test(trimmed) && trimmed[0] === fence[0];
}

function parseBlock(
  doc: string,
  line: number,
  attributes: string,
  body: string[],
  unclosed: boolean,
): PokeBlock {
  const block: PokeBlock = { doc, line, timeoutMs: DEFAULT_TIMEOUT_MS, needs: [], steps: [] };
  const problems: string[] = [];
  if (unclosed) problems.push("the block is never closed");
  for (const word of attributes.trim().split(/\s+/).filter(Boolean)) {
    const [key, value = ""] = word.split("=", 2);
    if (key === "timeout" && Number(value) > 0) block.timeoutMs = Number(value) * 1000;
    else if (key === "needs" && value) block.needs.push(...value.split(","));
    else problems.push(`unknown setting \`${word}\` (known: timeout=SECONDS, needs=TOOL,TOOL)`);
  }
  for (let k = 0; k < body.length; k++) {
    const text = body[k];
    if (!text.startsWith("$ ")) {
      const step = block.steps.at(-1);
      if (step) step.expected.push(text);
      else if (text.trim()) problems.push(`line ${line + 1 + k}: a poke starts with \`$ \``);
      continue;
    }
    const start = k;
    let command = text.slice(2);
    while (command.endsWith("\\") && k + 1 < body.length) command += "\n" + body[++k];
    const heredoc = command.match(/<<(-?)\s*(['"]?)(\w+)\2/);
    if (heredoc) {
      const end = heredoc[3];
      while (k + 1 < body.length) {
        const next = body[++k];
        command += "\n" + next;
        if ((heredoc[1] ? next.trim() : next) === end) break;
      }
    }
    block.steps.push({
      line: line + 1 + start,
      command,
      background: BACKGROUND.test(command.split("\n")[0]),
      expected: [],
    });
  }
  for (const step of block.steps) {
    while (step.expected.length && !step.expected.at(-1)!.trim()) step.expected.pop();
  }
  if (!block.steps.length) problems.push("no `$ ` command in the block");
  const named = new Set(block.needs);
  for (const step of block.steps) {
    for (const word of step.command.split(/[\s|;&()<>`"'=$]+/)) {
      if (Object.hasOwn(TOOLS, word)) named.add(word);
    }
  }
  block.needs = [...named];
  if (problems.length) block.problem = problems.join("; ");
  return block;
}

function normalize(line: string): string {
  // deno-lint-ignore no-control-regex
  return line.replace(/\x1b\[[0-9;]*m/g, "").replace(/[ \t]+/g, " ").trimEnd();
}

function lineRegex(expected: string): RegExp {
  const parts = normalize(expected).split("...").map((p) =>
    p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  );
  return new RegExp(`^${parts.join(".*")}$`);
}

function outputLines(output: string): string[] {
  const lines = output.replace(/\r\n/g, "\n").split("\n").map(normalize);
  while (lines.length && !lines.at(-1)) lines.pop();
  return lines;
}

/**
 * Whether `output` is what `expected` promises: every line matches, with `...` as a
 * wildcard inside a line and a line of `...` standing for any number of lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchesOutput } from "./pokes.ts";
 *
 * assert.ok(matchesOutput(["hello ..., you reached 127.0.0.1:9000"],
 *   "hello 127.0.0.1:40312, you reached 127.0.0.1:9000\n"));
 * assert.ok(!matchesOutput(["ack-HELLO"], "ack-hello\n"));
 * ```
 */
export function matchesOutput(expected: string[], output: string): boolean {
  const want = [...expected];
  while (want.length && !want.at(-1)!.trim()) want.pop();
  const got = outputLines(output);
  const patterns = want.map((line) => line.trim() === "..." ? undefined : lineRegex(line));
  const memo = new Map<number, boolean>();
  const from = (i: number, j: number): boolean => {
    const key = i * (got.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let ok: boolean;
    if (i === patterns.length) ok = j === got.length;
    else if (patterns[i] === undefined) ok = from(i + 1, j) || (j < got.length && from(i, j + 1));
    else ok = j < got.length && patterns[i]!.test(got[j]) && from(i + 1, j + 1);
    memo.set(key, ok);
    return ok;
  };
  return from(0, 0);
}

/**
 * The first promised line that `lines` do not show in order (other lines may come
 * between), or undefined when all are there. For logs and background output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingInOrder } from "./pokes.ts";
 *
 * const log = ["10:00 listening on 127.0.0.1:9000", "10:01 left (reset)", "10:02 stopped"];
 * assert.equal(missingInOrder(["... left (reset)", "... stopped"], log), undefined);
 * assert.equal(missingInOrder(["... stopped", "... left (reset)"], log), "... left (reset)");
 * ```
 */
export function missingInOrder(expected: string[], lines: string[]): string | undefined {
  let j = 0;
  for (const want of expected) {
    if (!want.trim() || want.trim() === "...") continue;
    const pattern = lineRegex(want);
    while (j < lines.length && !pattern.test(normalize(lines[j]))) j++;
    if (j === lines.length) return want;
    j++;
  }
  return undefined;
}

/**
 * `text` with each doc port (9000–9099) replaced through `ports`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { replacePorts } from "./pokes.ts";
 *
 * assert.equal(replacePorts("nc 127.0.0.1 9000 # not 19000", new Map([[9000, 41234]])),
 *   "nc 127.0.0.1 41234 # not 19000");
 * ```
 */
export function replacePorts(text: string, ports: ReadonlyMap<number, number>): string {
  return text.replace(PORT, (port) => String(ports.get(Number(port)) ?? port));
}

/** The doc ports (9000–9099) that `text` names. */
function portsIn(text: string): number[] {
  return [...text.matchAll(PORT)].map((m) => Number(m[1]));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The lesson's programs a `deno task run N PROGRAM …` command names, or undefined. */
function taskRun(command: string): { lesson: Lesson; name: string; rest: string } | undefined {
  const m = command.match(/^deno task run (\d+) (\S+)(.*)$/s);
  if (!m) return undefined;
  try {
    return { lesson: getLesson(m[1]), name: m[2], rest: m[3] };
  } catch {
    return undefined;
  }
}

/** `deno task run N P …` → the reference, quietly: `deno task -q run N P --solution …`. */
function withSolution(command: string): string {
  return command.replace(
    /(?<![\w./-])deno task run (\d+) (\S+)(?![^\n]*--solution)/g,
    "deno task -q run $1 $2 --solution",
  );
}

/** A finished shell command: what it printed, and whether it ran out of time. */
export interface ShellResult {
  /** What it printed, stdout and stderr together. */
  output: string;
  /** It was stopped at its timeout. */
  timedOut: boolean;
}

/** A shell command running in its own session (so its whole group can be stopped). */
class Shell {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  #pending = "";
  readonly done: Promise<void>;

  constructor(script: string) {
    this.child = new Deno.Command("setsid", {
      args: ["bash", "-c", `exec 2>&1\n${script}`],
      cwd: PROJECT_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = this.child.stdout;
    this.done = (async () => {
      for await (const text of stdout.pipeThrough(new TextDecoderStream())) {
        const parts = (this.#pending + text).split("\n");
        this.#pending = parts.pop()!;
        this.lines.push(...parts);
      }
      if (this.#pending) this.lines.push(this.#pending);
      this.#pending = "";
    })().catch(() => {});
  }

  get output(): string {
    return [...this.lines, this.#pending].join("\n");
  }

  /** Sends `signal` to the whole group (the command and whatever it started). */
  async signal(signal: "TERM" | "KILL" | "INT"): Promise<void> {
    await signalGroup(this.child.pid, signal);
  }

  /** Stops the group (TERM, then KILL after 1 s) and waits for its output to end. */
  async stop(): Promise<void> {
    await this.signal("TERM");
    if (!await within(this.child.status, 1000)) await this.signal("KILL");
    await this.child.status;
    await within(this.done, 1000);
  }
}

async function signalGroup(pgid: number, signal: string): Promise<void> {
  try {
    await new Deno.Command("bash", {
      args: ["-c", `kill -${signal} -- -${pgid}`],
      stdout: "null",
      stderr: "null",
    }).output();
  } catch {
    // Gone already.
  }
}

async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return done;
}

/** Runs `script` to its end or its timeout; the whole group is stopped either way. */
async function runShell(script: string, timeoutMs: number): Promise<ShellResult> {
  const shell = new Shell(script);
  const finished = await within(shell.child.status, timeoutMs);
  // Whatever it left behind in the background goes too: the output then ends.
  await shell.stop();
  return { output: shell.output, timedOut: !finished };
}

/** Asks bash whether each tool is usable. */
/** A fresh directory that stands for a block's `/tmp/`. */
async function makeScratch(): Promise<string> {
  const { output } = await runShell('mktemp -d "${TMPDIR:-/tmp}/workbook-poke.XXXXXX"', 5000);
  const path = output.trim();
  if (!path.startsWith("/")) throw new Error(`could not make a scratch directory: ${path}`);
  return path;
}

async function bashHasTool(tool: string): Promise<boolean> {
  const check = TOOLS[tool]?.check ?? `command -v ${tool}`;
  try {
    const { success } = await new Deno.Command("bash", {
      args: ["-c", `{ ${check}; } >/dev/null 2>&1`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** Whether something listens on `port` (TCP, or bound UDP with `udp`), or a socket file exists. */
async function listening(
  target: { port?: number; udp?: boolean; path?: string },
): Promise<boolean> {
  const script = target.path
    ? `test -S '${target.path}'`
    : target.udp
    ? `cat /proc/net/udp /proc/net/udp6 | awk '{print $2}' | grep -qi ':${hex(target.port!)}$'`
    : `cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == "0A" {print $2}' | grep -qi ':${
      hex(target.port!)
    }$'`;
  const { success } = await new Deno.Command("bash", {
    args: ["-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return success;
}

function hex(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, "0");
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (true) {
    if (await check()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The promised lines printed before a stop: those up to the first `stopped` line. */
function beforeStop(expected: string[]): string[] {
  const stop = expected.findIndex((line) => /\bstopped\b/.test(line));
  return stop < 0 ? expected : expected.slice(0, stop);
}

/** What a background job has printed so far. */
function jobLines(job: Job): string[] {
  return job.kind === "program" ? job.program.tail(200) : job.shell.lines;
}

/** A background command of a block: a started reference program, or a shell. */
type Job =
  | { kind: "program"; step: PokeStep; program: RunningProgram }
  | { kind: "shell"; step: PokeStep; shell: Shell };

function indent(lines: string[]): string {
  return (lines.length ? lines : ["(nothing)"]).map((l) => `    ${l}`).join("\n");
}

/** A background command without its `&`: the runner keeps it in the background itself. */
function foreground(command: string): string {
  const [first, ...rest] = command.split("\n");
  return [first.replace(AMPERSAND, ""), ...rest].join("\n");
}

/** The label of a block in reports: where it is and what it starts. */
export function pokeName(block: PokeBlock): string {
  const started = block.steps
    .filter((s) => s.background)
    .map((s) => {
      const words = s.command.split(/[\s|;&()]+/).filter(Boolean);
      return s.command.match(/deno task run \d+ (\S+)/)?.[1] ??
        words.find((w) => Object.hasOwn(TOOLS, w)) ?? words[0];
    });
  const what = started.length ? ` (${[...new Set(started)].join(", ")})` : "";
  return `poke ${block.doc}:${block.line}${what}`;
}

/**
 * Runs one block: starts what it starts, runs each command, compares, stops everything.
 *
 * @example
 * ```ts ignore
 * import { parsePokes, runPoke } from "./pokes.ts";
 *
 * const fence = "`".repeat(3);
 * const [block] = parsePokes(`${fence}sh poke\n$ echo hi\nhi\n${fence}\n`, "docs/x.md");
 * console.log((await runPoke(block)).ok); // true
 * ```
 */
export async function runPoke(
  block: PokeBlock,
  options: Pick<PokeOptions, "hasTool" | "onOutput" | "runCommand"> = {},
): Promise<PokeOutcome> {
  const name = pokeName(block);
  const started = performance.now();
  const outcome = (ok: boolean, detail: string, skipped = false): PokeOutcome => ({
    name,
    ok,
    ...(skipped ? { skipped } : {}),
    detail,
    ms: performance.now() - started,
  });
  if (block.problem) return outcome(false, `${block.doc}:${block.line}: ${block.problem}`);
  if (Deno.build.os !== "linux") {
    return outcome(true, `skipped: pokes run on Linux only (this is ${Deno.build.os})`, true);
  }
  const hasTool = options.hasTool ?? bashHasTool;
  const run = options.runCommand ?? runShell;
  const missing: string[] = [];
  for (const tool of ["bash", "setsid", ...block.needs]) {
    if (!await hasTool(tool)) missing.push(tool);
  }
  if (missing.length) {
    const what = missing.map((t) => TOOLS[t] ? `${t} (${TOOLS[t].install})` : t).join(", ");
    return outcome(true, `skipped: needs ${what}`, true);
  }
  const ports = new Map<number, number>();
  const scratch = block.steps.some((s) => s.command.search(TMP) >= 0)
    ? await makeScratch()
    : undefined;
  const local = (text: string) => {
    const ported = replacePorts(text, ports);
    return scratch ? ported.replace(TMP, `${scratch}/`) : ported;
  };
  const jobs: Job[] = [];
  let failure: string | undefined;
  const at = (step: PokeStep) => `${block.doc}:${step.line}: \`${step.command.split("\n")[0]}\``;
  try {
    for (const step of block.steps) {
      const server = step.background ? taskRun(foreground(step.command)) : undefined;
      const serverPort = server?.rest.match(/--port (\d+)/);
      const program = server?.lesson.programs.find((p) => p.name === server.name);
      if (server && program && serverPort && !ports.has(Number(serverPort[1]))) {
        const flags = server.rest.replace(/--port \d+|--solution/g, "").trim().split(/\s+/)
          .filter(Boolean);
        const running = await RunningProgram.start(server.lesson, program, {
          solution: true,
          flags,
        });
        ports.set(Number(serverPort[1]), running.address.port);
        jobs.push({ kind: "program", step, program: running });
        continue;
      }
      for (const port of portsIn([step.command, ...step.expected].join("\n"))) {
        if (!ports.has(port)) ports.set(port, freePort());
      }
      let command = withSolution(local(step.command));
      command = command.replace(/%(\d+)\b/g, (spec, n) => {
        const job = jobs[Number(n) - 1];
        if (!job) return spec;
        return job.kind === "program" ? String(job.program.pid) : `-${job.shell.child.pid}`;
      });
      const expected = step.expected.map(local);
      if (step.background) {
        const shell = new Shell(foreground(command));
        jobs.push({ kind: "shell", step, shell });
        const ready = await backgroundReady(command, expected, shell, block.timeoutMs);
        if (!ready) {
          failure = `${at(step)} did not ${
            /\bnc\b.*\s-\w*l/.test(command)
              ? "start listening"
              : `print \`${expected.find((l) => l.trim() && l.trim() !== "...")}\``
          } within ${block.timeoutMs / 1000} s. It printed:\n${indent(shell.lines.slice(-20))}`;
          break;
        }
        continue;
      }
      const retry = /^\s*ss\s/.test(command);
      const deadline = performance.now() + block.timeoutMs;
      let result: ShellResult;
      while (true) {
        result = await run(command, Math.max(100, deadline - performance.now()));
        if (result.timedOut || matchesOutput(expected, result.output)) break;
        if (!retry || performance.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      options.onOutput?.(step, command, outputLines(result.output));
      for (const spec of step.command.matchAll(/%(\d+)\b/g)) {
        const job = jobs[Number(spec[1]) - 1];
        if (/^\s*kill\b/.test(step.command) && job?.kind === "program") {
          await within(job.program.status, block.timeoutMs);
        }
      }
      if (result.timedOut || !matchesOutput(expected, result.output)) {
        const late = result.timedOut ? ` did not finish within ${block.timeoutMs / 1000} s` : "";
        failure = `${at(step)}${late}\n  the doc promises:\n${indent(expected)}\n` +
          `  it printed:\n${indent(outputLines(result.output))}`;
        break;
      }
    }
    // A background command prints on its own schedule (a watch looks every 100 ms): its
    // promised lines get the block's timeout to arrive before everything is stopped. Lines
    // from `stopped` on are printed by the stop itself: they are checked after it.
    if (!failure) {
      await until(
        () =>
          jobs.every((job) =>
            missingInOrder(beforeStop(job.step.expected.map(local)), jobLines(job)) === undefined
          ),
        block.timeoutMs,
      );
    }
  } catch (error) {
    failure = `${block.doc}:${block.line}: ${error instanceof Error ? error.message : error}`;
  } finally {
    // Programs first (a client still connected sees the server go), then the shells.
    for (const job of [...jobs].reverse()) {
      if (job.kind === "program") await job.program.stop();
    }
    for (const job of jobs) if (job.kind === "shell") await job.shell.stop();
    if (scratch) await runShell(`rm -rf '${scratch}'`, 5000);
    for (const job of jobs) {
      const lines = jobLines(job);
      options.onOutput?.(job.step, job.step.command, lines.map(normalize));
    }
  }
  let shown: Job | undefined;
  if (!failure) {
    for (const job of jobs) {
      const expected = job.step.expected.map(local);
      const lines = jobLines(job);
      const missingLine = missingInOrder(expected, lines);
      if (missingLine !== undefined) {
        failure = `${at(job.step)}: the doc promises \`${missingLine}\` ${
          job.kind === "program" ? "in its log" : "in its output"
        } (in that order); it printed (the end of it):\n${indent(lines.slice(-20))}`;
        shown = job;
        break;
      }
    }
  }
  if (failure) {
    const logs = jobs.flatMap((j) =>
      j.kind === "program" && j !== shown
        ? [`  log of \`${foreground(j.step.command)}\` (reference):\n${indent(j.program.tail(12))}`]
        : []
    );
    return outcome(false, [failure, ...logs].join("\n"));
  }
  const n = block.steps.length;
  return outcome(true, `${n} command${n === 1 ? "" : "s"}`);
}

async function backgroundReady(
  command: string,
  expected: string[],
  shell: Shell,
  timeoutMs: number,
): Promise<boolean> {
  const nc = command.match(/\bnc\b([^|;&]*)\s-(\w*l\w*)([^|;&]*)/);
  if (nc) {
    const words = `${nc[1]} -${nc[2]}${nc[3]}`.trim().split(/\s+/);
    const unix = nc[2].includes("U") || words.some((w) => /^-\w*U/.test(w));
    const udp = nc[2].includes("u") || words.some((w) => /^-\w*u/.test(w));
    const last = words.filter((w) => !w.startsWith("-") && !w.startsWith(">")).at(-1) ?? "";
    const target = unix ? { path: last } : { port: Number(last), udp };
    return await until(() => listening(target), timeoutMs);
  }
  const first = expected[0];
  if (first === undefined || first.trim() === "...") return true;
  return await until(() => missingInOrder([first], shell.lines) === undefined, timeoutMs);
}

/**
 * Runs every runnable poke of `lessons`' docs, one block at a time, and returns
 * what each came to. A doc without runnable pokes gives one failed outcome: the
 * self-check wants every lesson poked.
 *
 * @example
 * ```ts ignore
 * import { getLesson } from "../catalogue.ts";
 * import { pokeOutcomes } from "./pokes.ts";
 *
 * for (const o of await pokeOutcomes([getLesson("03")])) console.log(o.ok, o.name);
 * ```
 */
export async function pokeOutcomes(
  lessons: readonly Lesson[],
  options: PokeOptions = {},
): Promise<PokeOutcome[]> {
  const outcomes: PokeOutcome[] = [];
  const report = (o: PokeOutcome) => {
    outcomes.push(o);
    options.onOutcome?.(o);
  };
  const tools = new Map<string, Promise<boolean>>();
  const hasTool = (tool: string) => {
    if (!tools.has(tool)) tools.set(tool, (options.hasTool ?? bashHasTool)(tool));
    return tools.get(tool)!;
  };
  const jobs: (() => Promise<PokeOutcome>)[] = [];
  for (const lesson of lessons) {
    const doc = docPath(lesson);
    const blocks = parsePokes(await Deno.readTextFile(`${PROJECT_ROOT}/${doc}`), doc);
    if (!blocks.length) {
      jobs.push(() =>
        Promise.resolve({
          name: `pokes of ${doc}`,
          ok: false,
          detail: "no runnable poke block",
          ms: 0,
        })
      );
    }
    for (const block of blocks) {
      jobs.push(() => runPoke(block, { hasTool, onOutput: options.onOutput }));
    }
  }
  // Blocks are independent (own programs, ports and scratch directories): `jobs` run at once.
  const results: PokeOutcome[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const at = next++;
      results[at] = await jobs[at]();
      report(results[at]);
    }
  };
  const width = Math.max(1, Math.min(options.jobs ?? 1, jobs.length));
  await Promise.all(Array.from({ length: width }, worker));
  outcomes.splice(0, outcomes.length, ...results);
  return outcomes;
}

if (import.meta.main) {
  const { values, positionals: keys } = parseArgs({
    args: Deno.args,
    options: { show: { type: "boolean" }, jobs: { type: "string" } },
    allowPositionals: true,
  });
  const show = values.show ?? false;
  const selected = keys.length ? keys.map((key) => getLesson(key)) : allLessons;
  const t0 = performance.now();
  const outcomes = await pokeOutcomes(selected, {
    jobs: Number(values.jobs ?? 1) || 1,
    onOutput: show
      ? (step, command, output) =>
        console.log(
          paint("gray", `line ${step.line}: $ ${command}\n${output.join("\n")}`)
            .replace(/^/gm, "  │ "),
        )
      : undefined,
    onOutcome: (o) => {
      const mark = o.skipped
        ? paint("yellow", "–")
        : o.ok
        ? paint("green", "✓")
        : paint("red", "✗");
      const time = paint("gray", `(${(o.ms / 1000).toFixed(1)} s)`);
      console.log(`${mark} ${o.name} ${time}${o.ok ? paint("gray", ` — ${o.detail}`) : ""}`);
      if (!o.ok) console.log(o.detail.split("\n").map((l) => `    ${l}`).join("\n"));
    },
  });
  const failed = outcomes.filter((o) => !o.ok).length;
  const skipped = outcomes.filter((o) => o.skipped).length;
  console.log(`pokes took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${outcomes.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped`);
  Deno.exit(failed ? 1 : 0);
}
