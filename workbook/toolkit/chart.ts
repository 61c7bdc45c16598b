/**
 * Charts of measured results for the lesson benches: a Vega-Lite spec drawn
 * headless (no browser, no canvas) into an SVG file the docs can embed.
 *
 * A bench prints its figures as tables and, when given `--chart DIR`, also
 * writes them as SVG beside them. Without the flag it writes nothing. The
 * catalogue grants a bench's extra write permission (`extra.write`), never a
 * grading run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChart } from "workbook/chart";
 *
 * const svg = await renderChart({
 *   data: { values: [{ n: 10, us: 2 }, { n: 100, us: 4 }] },
 *   mark: "line",
 *   encoding: {
 *     x: { field: "n", type: "quantitative" },
 *     y: { field: "us", type: "quantitative" },
 *   },
 * });
 * assert(svg.startsWith("<svg"));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** A Vega-Lite chart description (https://vega.github.io/vega-lite/docs/). */
export type ChartSpec = TopLevelSpec;

/** The look every workbook chart shares: a white background and a readable font size. */
const CONFIG = {
  background: "white",
  font: "sans-serif",
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: "#555", anchor: "start" },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
} as const;

/**
 * Character widths of a Helvetica-like sans-serif, in thousandths of the
 * font size, grouped by width; a character not listed counts as a digit (556).
 */
const CHAR_WIDTHS = new Map<string, number>(
  Object.entries({
    "'": 191,
    "ijl": 222,
    "|": 260,
    " !,./:;I[\\]ft": 278,
    "()-`r": 333,
    "{}": 334,
    '"': 355,
    "*": 389,
    "^": 469,
    "Jckvxyzs": 500,
    "+<=>~": 584,
    "FTZ": 611,
    "&ABEKPSVXY": 667,
    "CDHNRUw": 722,
    "GOQ": 778,
    "Mm": 833,
    "%": 889,
    "W": 944,
    "@": 1015,
  }).flatMap(([chars, width]) => [...chars].map((char) => [char, width] as const)),
);

/**
 * How wide a text is drawn, in pixels: per-character widths, with room to
 * spare for the wider sans-serif fonts viewers substitute (DejaVu Sans) and
 * for bold. Vega's own guess without a canvas (0.8 × size per character) is
 * far too wide, and leaves every chart with an empty band on its right.
 */
function textWidth(item: { fontSize?: number; fontWeight?: string | number }, text: string) {
  const size = item.fontSize ?? 11;
  const bold = item.fontWeight === "bold" || Number(item.fontWeight) >= 600;
  let units = 0;
  for (const char of String(text ?? "").trim()) {
    units += CHAR_WIDTHS.get(char) ?? 556;
  }
  return (units / 1000) * size * (bold ? 1.4 : 1.2);
}
// Vega reads text widths through this hook (its types leave it out).
(vega as unknown as { textMetrics: { width: typeof textWidth } }).textMetrics.width = textWidth;

/**
 * Draws a Vega-Lite spec as an SVG document: compiled to Vega, run in a
 * headless view, and serialised. Text is measured by a table of character
 * widths (no canvas), so the same figures give the same file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChart } from "workbook/chart";
 *
 * const svg = await renderChart({
 *   data: { values: [{ model: "serial", ms: 520 }, { model: "concurrent", ms: 53 }] },
 *   mark: "bar",
 *   encoding: {
 *     x: { field: "model", type: "nominal" },
 *     y: { field: "ms", type: "quantitative" },
 *   },
 * });
 * assert(svg.startsWith("<svg") && svg.includes("serial"));
 * ```
 */
export async function renderChart(spec: ChartSpec): Promise<string> {
  const withLook = { ...spec, config: { ...CONFIG, ...spec.config } } as ChartSpec;
  const view = new vega.View(vega.parse(compile(withLook).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * The directory of `--chart DIR` (or `--chart=DIR`) in a program's arguments,
 * or `undefined` when the flag is absent. Other flags are left alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chartDirFlag } from "workbook/chart";
 *
 * assert.equal(chartDirFlag(["--quick", "--chart", "docs/charts"]), "docs/charts");
 * assert.equal(chartDirFlag(["--quick"]), undefined);
 * ```
 */
export function chartDirFlag(args: string[]): string | undefined {
  const { values } = parseArgs({
    args,
    options: { chart: { type: "string" } },
    strict: false,
    allowPositionals: true,
  });
  return typeof values.chart === "string" ? values.chart : undefined;
}

/**
 * One line naming where a figure was measured, for a chart's subtitle:
 * system, CPUs, Deno version and the day.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { machineNote } from "workbook/chart";
 *
 * assert(machineNote().includes(Deno.version.deno));
 * ```
 */
export function machineNote(): string {
  const cpus = navigator.hardwareConcurrency;
  const day = new Date().toISOString().slice(0, 10);
  return `${Deno.build.os}/${Deno.build.arch}, ${cpus} CPU${cpus === 1 ? "" : "s"}, ` +
    `Deno ${Deno.version.deno}, ${day}`;
}

/**
 * The command line that runs a lesson's program as this run was started, for a
 * chart to name what produced it: `--solution` when the learner's file
 * (`import.meta.resolve` of it, through the runner's import map) is the reference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCommand } from "workbook/chart";
 *
 * assert.equal(
 *   runCommand("11", "bench", "file:///w/solutions/11-select-poll-epoll/multiplex.ts", [
 *     "--chart",
 *     "docs/charts",
 *   ]),
 *   "deno task run 11 bench --solution --chart docs/charts",
 * );
 * ```
 */
export function runCommand(
  lesson: string,
  program: string,
  learnerFileUrl: string,
  args: string[],
): string {
  const solution = learnerFileUrl.includes("/solutions/") ? ["--solution"] : [];
  return ["deno task run", String(Number(lesson)), program, ...solution, ...args].join(" ");
}

/**
 * Renders `spec` and writes it to `DIR/NAME.svg` (the directory is made if
 * missing). Returns the path written. A directory the program may not write
 * fails with a message that says where writing is allowed.
 *
 * @example
 * ```ts ignore
 * import { writeChart } from "workbook/chart";
 *
 * const path = await writeChart("docs/charts", "11-wait-cost", {
 *   data: { values: [{ n: 10, us: 2 }] },
 *   mark: "point",
 *   encoding: { x: { field: "n", type: "quantitative" }, y: { field: "us", type: "quantitative" } },
 * });
 * console.log(`chart: ${path}`);
 * ```
 */
export async function writeChart(dir: string, name: string, spec: ChartSpec): Promise<string> {
  const svg = await renderChart(spec);
  const path = `${dir.replace(/\/+$/, "")}/${name}.svg`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(path, svg.endsWith("\n") ? svg : `${svg}\n`);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `cannot write ${path}: this program may write charts only where its catalogue entry ` +
          `allows (extra.write, e.g. --chart docs/charts)`,
      );
    }
    throw error;
  }
  return path;
}
