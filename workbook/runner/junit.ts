/**
 * Reads the JUnit XML that `deno test --junit-path` writes: one entry per
 * test (and per step), with its failure message.
 *
 * @module
 */

/** One test case from the report. */
export interface JunitCase {
  name: string;
  failure?: string;
  skipped: boolean;
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decode(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, entity: string) => {
    if (entity.startsWith("#x")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return ENTITIES[entity] ?? whole;
  });
}

/**
 * Parses Deno's JUnit output (a small, regular subset of XML).
 *
 * @example
 * ```ts
 * import { parseJunit } from "./junit.ts";
 *
 * const xml = '<testcase name="a &gt; b"><failure message="x">boom</failure></testcase>';
 * console.log(parseJunit(xml)); // [{ name: "a > b", failure: "boom", skipped: false }]
 * ```
 */
export function parseJunit(xml: string): JunitCase[] {
  const cases: JunitCase[] = [];
  const pattern = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(pattern)) {
    const name = decode(match[1].match(/\bname="([^"]*)"/)?.[1] ?? "");
    const body = match[3] ?? "";
    const failure = body.match(/<failure\b[^>]*>([\s\S]*?)<\/failure>/);
    cases.push({
      name,
      failure: failure ? decode(failure[1]) : undefined,
      skipped: /<skipped\b/.test(body),
    });
  }
  return cases;
}
