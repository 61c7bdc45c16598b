/**
 * Lines a person types, as a program really gets them from stdin: an async
 * iterable whose `next()` waits for the next line, and whose `return()` —
 * like the iterator of `Deno.stdin.readable` — does not cut a pending
 * `next()` short: it settles only after that read does (the next line typed,
 * or the end of input). A client that awaits `return()` while its own read of
 * stdin is still pending hangs on a real terminal; with this double it hangs
 * in the suite too, instead of passing on a friendlier fake.
 *
 * @module
 */

/**
 * Lines typed by the grader for a program that reads stdin.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TypedInput } from "./typed_input.ts";
 * import { nextTurn } from "./wait.ts";
 *
 * const input = new TypedInput();
 * input.type("hello");
 * const lines: string[] = [];
 * const reading = (async () => {
 *   for await (const line of input) lines.push(line);
 * })();
 * await nextTurn();
 * assert.equal(input.waiting, true);
 * input.type("bye");
 * input.end(); // Ctrl-D
 * await reading;
 * assert.deepEqual(lines, ["hello", "bye"]);
 *
 * // Like stdin, return() waits for the read in flight.
 * const stdin = new TypedInput();
 * const iterator = stdin[Symbol.asyncIterator]();
 * const pending = iterator.next();
 * const returning = iterator.return!();
 * await nextTurn();
 * assert.deepEqual([stdin.returned, stdin.released], [true, false]);
 * stdin.type("typed later");
 * assert.deepEqual(await pending, { value: "typed later", done: false });
 * await returning;
 * assert.equal(stdin.released, true);
 * ```
 */
export class TypedInput implements AsyncIterable<string> {
  #lines: string[] = [];
  #ended = false;
  #waiting: ((result: IteratorResult<string>) => void) | undefined;
  #ongoing: Promise<unknown> = Promise.resolve();
  #reads = 0;
  /** Set when the program called `return()` on the input (it is done with stdin). */
  returned = false;
  /** Set when that `return()` has settled: the input is released. */
  released = false;

  /** How many times the program asked for a line. */
  get reads(): number {
    return this.#reads;
  }

  /** True while the program waits for a line nobody has typed yet. */
  get waiting(): boolean {
    return this.#waiting !== undefined;
  }

  /** Types one line (without its newline). */
  type(line: string): void {
    if (this.#ended) throw new Error("TypedInput: a line typed after the end of input");
    const wake = this.#waiting;
    this.#waiting = undefined;
    if (wake) wake({ value: line, done: false });
    else this.#lines.push(line);
  }

  /** Ends the input, as Ctrl-D does. */
  end(): void {
    this.#ended = true;
    const wake = this.#waiting;
    this.#waiting = undefined;
    wake?.({ value: undefined, done: true });
  }

  /** The program's view: `for await (const line of input)`, like `Deno.stdin`'s lines. */
  [Symbol.asyncIterator](): AsyncIterator<string> {
    return {
      next: () => {
        this.#reads++;
        const read = this.#ongoing.then(() => this.#read());
        this.#ongoing = read.catch(() => {});
        return read;
      },
      return: () => {
        this.returned = true;
        const done = this.#ongoing.then(() => {
          this.#ended = true;
          this.released = true;
          return { value: undefined, done: true } as IteratorResult<string>;
        });
        this.#ongoing = done;
        return done;
      },
    };
  }

  #read(): Promise<IteratorResult<string>> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve({ value: line, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting = resolve);
  }
}
