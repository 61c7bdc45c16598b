/**
 * Terminal colours through `node:util`'s styleText, off when NO_COLOR is set
 * or output is not a terminal.
 *
 * @module
 */
import { styleText } from "node:util";

function colourOn(): boolean {
  try {
    return !Deno.env.get("NO_COLOR") && Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

const on = colourOn();

type Format = Parameters<typeof styleText>[0];

/**
 * Styles `text` when colour is on; plain text otherwise.
 *
 * @example
 * ```ts
 * import { paint } from "./style.ts";
 *
 * console.log(paint("green", "✓ passed"));
 * ```
 */
export function paint(format: Format, text: string): string {
  return on ? styleText(format, text, { validateStream: false }) : text;
}
