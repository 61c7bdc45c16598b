/**
 * A lesson program under attack: started as `deno task run` starts it (the
 * lesson's own least permissions, port 0), its address read from its first
 * log line, and watched from outside through `/proc/PID` — resident memory,
 * descriptors, CPU time — with `cat` and `ls`, since Deno reads `/proc`
 * only with every permission.
 *
 * @module
 */
import type { Lesson, LessonProgram } from "../catalogue.ts";
import { PROJECT_ROOT } from "../harness/target.ts";
import { programArgs } from "../runner/program_run.ts";

/** Where a started program listens. */
export interface Listening {
  hostname: string;
  port: number;
}

/** Options of {@linkcode RunningProgram.start}. */
export interface StartOptions {
  /** Attack the reference instead of the learner's file. */
  solution?: boolean;
  /** Or any directory laid out like lessons/ (a known-bad variant, someone's copy). */
  targetRoot?: string;
  /** Host to bind (default 127.0.0.1). */
  host?: string;
  /** Lower the descriptor limit (soft and hard) to this many, with prlimit. */
  nofile?: number;
  /** Extra program flags. */
  flags?: string[];
}

/** `on 127.0.0.1:4000`, `on tcp [::1]:4000`, `listening on udp 127.0.0.1:4000,` … */
const ADDRESS = /\bon (?:tcp |udp )?(\S+):(\d+)(?=[\s,;)]|$)/;

async function capture(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { success, stdout } = await new Deno.Command(cmd, { args, stderr: "null" }).output();
    return success ? new TextDecoder().decode(stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** A lesson program running in a child process. */
export class RunningProgram {
  readonly #child: Deno.ChildProcess;
  readonly #tail: string[] = [];
  #lines = 0;
  #exited: Deno.CommandStatus | undefined;
  readonly status: Promise<Deno.CommandStatus>;
  readonly address: Listening;

  private constructor(child: Deno.ChildProcess, address: Listening, tail: string[]) {
    this.#child = child;
    this.address = address;
    this.#tail.push(...tail);
    this.#lines = tail.length;
    this.status = child.status.then((s) => this.#exited = s);
  }

  /** Starts `program` of `lesson` on port 0 and waits (≤ 15 s) for it to log its address. */
  static async start(
    lesson: Lesson,
    program: LessonProgram,
    options: StartOptions = {},
  ): Promise<RunningProgram> {
    const targetRoot = options.targetRoot ??
      `${PROJECT_ROOT}/${options.solution ? "solutions" : "lessons"}`;
    const deno = [
      "run",
      ...await programArgs(lesson, program, targetRoot),
      "--host",
      options.host ?? "127.0.0.1",
      "--port",
      "0",
      ...(options.flags ?? []),
    ];
    const [cmd, args] = options.nofile
      ? ["prlimit", [`--nofile=${options.nofile}:${options.nofile}`, "deno", ...deno]]
      : ["deno", deno];
    const child = new Deno.Command(cmd, {
      args,
      cwd: PROJECT_ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const seen: string[] = [];
    let found: Listening | undefined;
    let onFound: (() => void) | undefined;
    const foundOnce = new Promise<void>((resolve) => onFound = resolve);
    // Lines go to `seen` until the program object exists, then to it.
    const sink: { program?: RunningProgram } = {};
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      let pending = "";
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          if (sink.program) sink.program.#record(line);
          else seen.push(line);
          const match = !found && line.match(ADDRESS);
          if (match) {
            found = { hostname: match[1].replace(/^\[|\]$/g, ""), port: Number(match[2]) };
            onFound!();
          }
        }
      }
    };
    pump(child.stdout).catch(() => {});
    pump(child.stderr).catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      foundOnce.then(() => "found" as const),
      child.status.then(() => "exited" as const),
      new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), 15_000)),
    ]);
    clearTimeout(timer);
    if (outcome !== "found") {
      if (outcome === "late") child.kill("SIGKILL");
      await child.status;
      throw new Error(
        `${program.name} did not log the address it listens on ` +
          `(${outcome === "late" ? "within 15 s" : "it exited"}). Its output:\n` +
          seen.slice(-20).join("\n"),
      );
    }
    sink.program = new RunningProgram(child, found!, seen);
    return sink.program;
  }

  #record(line: string): void {
    this.#lines++;
    this.#tail.push(line);
    if (this.#tail.length > 200) this.#tail.shift();
  }

  /** The child's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Lines the program has printed so far. */
  get logLines(): number {
    return this.#lines;
  }

  /** The last lines it printed. */
  tail(n = 15): string[] {
    return this.#tail.slice(-n);
  }

  /** True while the process runs. */
  get alive(): boolean {
    return this.#exited === undefined;
  }

  /** How it exited, once it did. */
  get exited(): Deno.CommandStatus | undefined {
    return this.#exited;
  }

  /** Resident memory now and at its peak, in KiB (from /proc/PID/status). */
  async memory(): Promise<{ rssKiB: number; peakKiB: number } | undefined> {
    const text = await capture("cat", [`/proc/${this.pid}/status`]);
    const rss = text?.match(/^VmRSS:\s+(\d+)/m);
    const peak = text?.match(/^VmHWM:\s+(\d+)/m);
    return rss && peak ? { rssKiB: Number(rss[1]), peakKiB: Number(peak[1]) } : undefined;
  }

  /** Open descriptors (entries of /proc/PID/fd). */
  async descriptors(): Promise<number | undefined> {
    const text = await capture("ls", [`/proc/${this.pid}/fd`]);
    return text === undefined ? undefined : text.split("\n").filter(Boolean).length;
  }

  /** CPU time used so far, in clock ticks (user + system, from /proc/PID/stat). */
  async cpuTicks(): Promise<number | undefined> {
    const text = await capture("cat", [`/proc/${this.pid}/stat`]);
    const fields = text?.slice(text.lastIndexOf(")") + 2).split(" ");
    return fields ? Number(fields[11]) + Number(fields[12]) : undefined;
  }

  /**
   * Stops it as Ctrl-C would (SIGTERM), waiting up to `graceMs`; then SIGKILL.
   * Says whether it stopped on SIGTERM.
   */
  async stop(graceMs = 3000): Promise<boolean> {
    if (!this.alive) return true;
    try {
      this.#child.kill("SIGTERM");
    } catch {
      return true;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      this.status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), graceMs)),
    ]);
    clearTimeout(timer);
    if (!stopped) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await this.status;
    }
    return stopped;
  }
}
