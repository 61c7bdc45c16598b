/**
 * The self-check of the docs' charts: every SVG under `docs/charts/` is
 * well-formed XML whose root is `<svg>` in the SVG namespace, every chart is
 * embedded by a doc, every chart a doc embeds exists, and each embedded chart
 * names, in its caption (its paragraph or the next), the command that produced it.
 *
 * @module
 */
import { DOMParser } from "@xmldom/xmldom";
import { PROJECT_ROOT } from "../harness/target.ts";

/** The namespace a standalone SVG file's root element must be in to be drawn as SVG. */
export const SVG_NAMESPACE = "http://www.w3.org/2000/svg";

/**
 * Why `text` is not a standalone SVG document, or `undefined` when it is: a
 * strict XML parse (any warning or error stops it) whose root element is
 * `<svg>` in the SVG namespace.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { svgProblem } from "./charts.ts";
 *
 * assert.equal(svgProblem('<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>'), undefined);
 * assert.match(svgProblem('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>')!, /not well-formed/);
 * assert.match(svgProblem("<svg><g/></svg>")!, /SVG namespace/);
 * ```
 */
export function svgProblem(text: string): string | undefined {
  let document;
  try {
    // application/xml, not image/svg+xml: the latter would assume the SVG namespace
    // for a root that does not declare it, and a browser draws such a file as text.
    document = new DOMParser({
      onError(level, message) {
        throw new Error(`${level}: ${message}`);
      },
    }).parseFromString(text, "application/xml");
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return `is not well-formed XML (${message.split("\n")[0]})`;
  }
  const root = document.documentElement;
  if (!root) return "is not well-formed XML (no root element)";
  if (root.localName !== "svg" || root.namespaceURI !== SVG_NAMESPACE) {
    return `has the root element <${root.nodeName}> in namespace ${
      root.namespaceURI ?? "(none)"
    }, not <svg> in the SVG namespace (${SVG_NAMESPACE})`;
  }
  return undefined;
}

/** One image a doc embeds: where, and the target as written. */
interface Embed {
  doc: string;
  line: number;
  target: string;
  /** Its caption: the paragraph the image stands in, and the paragraph after it. */
  caption: string;
}

/** Markdown images `![alt](target "title")` and HTML `<img src="target">`. */
const IMAGE = /!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|<img\b[^>]*\bsrc="([^"]+)"/g;

/** The images of one markdown text, outside fenced code blocks. */
function embedsOf(doc: string, markdown: string): Embed[] {
  const lines = markdown.split("\n");
  const embeds: Embed[] = [];
  let fence: string | undefined;
  lines.forEach((text, i) => {
    const marker = text.match(/^\s*(`{3,}|~{3,})/)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence !== undefined) return;
    for (const match of text.matchAll(IMAGE)) {
      let first = i;
      while (first > 0 && lines[first - 1].trim() !== "") first--;
      let last = i;
      while (last < lines.length - 1 && lines[last + 1].trim() !== "") last++;
      while (last < lines.length - 1 && lines[last + 1].trim() === "") last++;
      while (last < lines.length - 1 && lines[last + 1].trim() !== "") last++;
      embeds.push({
        doc,
        line: i + 1,
        target: match[1] ?? match[2],
        caption: lines.slice(first, last + 1).join("\n"),
      });
    }
  });
  return embeds;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
    return names.sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** `a/b/../c/./d` → `a/c/d`. */
function normalise(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "." && part !== "") parts.push(part);
  }
  return parts.join("/");
}

/**
 * Problems with the docs' charts under `root` (default: the project), one
 * line each; none means the charts are fine. Checks that each
 * `docs/charts/*.svg` parses as an SVG document (see {@link svgProblem}), that
 * some doc embeds a chart at all, that every chart is embedded by a doc, that
 * every local image a doc embeds exists, and that each embedded chart's
 * caption (its paragraph or the next one) names the command that produced it
 * (`` `deno task run …` ``).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chartProblems } from "./charts.ts";
 *
 * assert.deepEqual(await chartProblems(), []);
 * ```
 */
export async function chartProblems(root: string = PROJECT_ROOT): Promise<string[]> {
  const problems: string[] = [];
  const charts = (await listDir(`${root}/docs/charts`)).map((name) => `docs/charts/${name}`);
  for (const chart of charts) {
    if (!chart.endsWith(".svg")) {
      problems.push(`${chart}: docs/charts/ holds SVG charts only`);
      continue;
    }
    const problem = svgProblem(await Deno.readTextFile(`${root}/${chart}`));
    if (problem) problems.push(`${chart} ${problem}`);
  }

  const embeds: Embed[] = [];
  for (const name of await listDir(`${root}/docs`)) {
    if (!name.endsWith(".md")) continue;
    embeds.push(...embedsOf(`docs/${name}`, await Deno.readTextFile(`${root}/docs/${name}`)));
  }
  const embedded = new Set<string>();
  for (const embed of embeds) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(embed.target) || embed.target.startsWith("#")) continue;
    const path = normalise(`docs/${embed.target.split(/[?#]/)[0]}`);
    const where = `${embed.doc}:${embed.line}`;
    if (!await exists(`${root}/${path}`)) {
      problems.push(`${where} embeds ${embed.target}, which does not exist (${path})`);
      continue;
    }
    if (!path.startsWith("docs/charts/")) continue;
    embedded.add(path);
    if (!/`deno task run [^`]+`/.test(embed.caption)) {
      problems.push(
        `${where} embeds ${embed.target} without the command that produced it ` +
          "(a `deno task run …` in its paragraph or the next one)",
      );
    }
  }
  if (embedded.size === 0) {
    problems.push("no doc embeds a chart (e.g. ![what it shows](charts/NAME.svg) in docs/*.md)");
  }
  for (const chart of charts) {
    if (chart.endsWith(".svg") && !embedded.has(chart)) {
      problems.push(`${chart} is embedded by no doc (docs/*.md: ![…](charts/…))`);
    }
  }
  return problems;
}
