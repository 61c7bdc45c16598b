/**
 * A small line diff (longest common subsequence) for `deno task solution N`:
 * lesson files are short, so the quadratic table is fine.
 *
 * @module
 */

/**
 * Unified-style diff lines: `  same`, `- only in a`, `+ only in b`, with
 * runs of unchanged lines longer than `context * 2` folded.
 *
 * @example
 * ```ts
 * import { diffLines } from "./diff.ts";
 *
 * console.log(diffLines("a\nb\nc", "a\nB\nc").join("\n"));
 * ```
 */
export function diffLines(a: string, b: string, context = 3): string[] {
  const x = a.split("\n");
  const y = b.split("\n");
  const table = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      table[i][j] = x[i] === y[j]
        ? table[i + 1][j + 1] + 1
        : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out: { mark: " " | "-" | "+"; text: string }[] = [];
  let i = 0, j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) out.push({ mark: " ", text: x[i++] }), j++;
    else if (j < y.length && (i === x.length || table[i][j + 1] >= table[i + 1][j])) {
      out.push({ mark: "+", text: y[j++] });
    } else out.push({ mark: "-", text: x[i++] });
  }
  // Fold long unchanged stretches.
  const lines: string[] = [];
  for (let k = 0; k < out.length;) {
    if (out[k].mark !== " ") {
      lines.push(`${out[k].mark} ${out[k].text}`);
      k++;
      continue;
    }
    let end = k;
    while (end < out.length && out[end].mark === " ") end++;
    const run = out.slice(k, end);
    const head = k === 0 ? 0 : context;
    const tailCount = end === out.length ? 0 : context;
    if (run.length > head + tailCount + 1) {
      run.slice(0, head).forEach((l) => lines.push(`  ${l.text}`));
      lines.push(`  … ${run.length - head - tailCount} unchanged lines`);
      run.slice(run.length - tailCount).forEach((l) => lines.push(`  ${l.text}`));
    } else run.forEach((l) => lines.push(`  ${l.text}`));
    k = end;
  }
  return lines;
}
