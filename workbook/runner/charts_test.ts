import assert from "node:assert/strict";
import { scratchDir } from "../harness/target.ts";
import { chartProblems, svgProblem } from "./charts.ts";

const GOOD_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g/></svg>\n';
const CAPTION = "Made by `deno task run 11 bench --solution --chart docs/charts` (2 cores, noisy).";

/**
 * The tests below build throwaway trees in the scratch directory, so they need write access to
 * it (`deno test -P` grants it); a run that does not grant it skips them rather than fail on
 * permissions. `chartProblems()` on the project itself needs only read access.
 */
const canWrite =
  (await Deno.permissions.query({ name: "write", path: scratchDir() })).state === "granted";
const tempTree = { ignore: !canWrite };

/** A throwaway project root holding `files` (path → text), removed after `fn`. */
async function withTree(
  files: Record<string, string>,
  fn: (root: string) => Promise<void>,
): Promise<void> {
  await Deno.mkdir(scratchDir(), { recursive: true });
  const root = await Deno.makeTempDir({ dir: scratchDir(), prefix: "charts-" });
  try {
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(`${root}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
      await Deno.writeTextFile(`${root}/${path}`, text);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("chartProblems: the committed charts are valid SVG, each embedded with its command", async () => {
  assert.deepEqual(await chartProblems(), []);
});

Deno.test("chartProblems: a clean tree has no problems", tempTree, async () => {
  await withTree({
    "docs/charts/a.svg": GOOD_SVG,
    "docs/01-a.md": `# A\n\n![the cost](charts/a.svg)\n\n${CAPTION}\n`,
  }, async (root) => assert.deepEqual(await chartProblems(root), []));
});

Deno.test("chartProblems: a broken SVG is reported", tempTree, async () => {
  await withTree({
    "docs/charts/a.svg": '<svg xmlns="http://www.w3.org/2000/svg"><g></svg>\n',
    "docs/01-a.md": `![the cost](charts/a.svg)\n${CAPTION}\n`,
  }, async (root) => {
    const problems = await chartProblems(root);
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0], /^docs\/charts\/a\.svg is not well-formed XML/);
  });
});

Deno.test(
  "chartProblems: a root that is not <svg> in the SVG namespace is reported",
  tempTree,
  async () => {
    await withTree({
      "docs/charts/bare.svg": "<svg><g/></svg>\n",
      "docs/charts/html.svg": '<html xmlns="http://www.w3.org/1999/xhtml"/>\n',
      "docs/01-a.md":
        `![one](charts/bare.svg)\n${CAPTION}\n\n![two](charts/html.svg)\n${CAPTION}\n`,
    }, async (root) => {
      const problems = await chartProblems(root);
      assert.equal(problems.length, 2, problems.join("\n"));
      assert.match(problems[0], /bare\.svg has the root element <svg> in namespace \(none\)/);
      assert.match(problems[1], /html\.svg has the root element <html>/);
    });
  },
);

Deno.test("chartProblems: a chart no doc embeds is reported", tempTree, async () => {
  await withTree({
    "docs/charts/a.svg": GOOD_SVG,
    "docs/charts/lonely.svg": GOOD_SVG,
    "docs/01-a.md": `![the cost](charts/a.svg)\n${CAPTION}\n`,
  }, async (root) => {
    assert.deepEqual(await chartProblems(root), [
      "docs/charts/lonely.svg is embedded by no doc (docs/*.md: ![…](charts/…))",
    ]);
  });
});

Deno.test("chartProblems: no chart embedded anywhere is reported", tempTree, async () => {
  await withTree({
    "docs/01-a.md": "# A\n\n```md\n![inside a code block](charts/a.svg)\n```\n",
  }, async (root) => {
    assert.deepEqual(await chartProblems(root), [
      "no doc embeds a chart (e.g. ![what it shows](charts/NAME.svg) in docs/*.md)",
    ]);
  });
});

Deno.test(
  "chartProblems: an embedded chart that does not exist is reported",
  tempTree,
  async () => {
    await withTree({
      "docs/charts/a.svg": GOOD_SVG,
      "docs/01-a.md":
        `![the cost](charts/a.svg)\n${CAPTION}\n\n![gone](charts/gone.svg)\n${CAPTION}\n`,
    }, async (root) => {
      assert.deepEqual(await chartProblems(root), [
        "docs/01-a.md:4 embeds charts/gone.svg, which does not exist (docs/charts/gone.svg)",
      ]);
    });
  },
);

Deno.test(
  "chartProblems: a chart without the command that produced it is reported",
  tempTree,
  async () => {
    await withTree({
      "docs/charts/a.svg": GOOD_SVG,
      "docs/01-a.md": "`deno task run 11 bench` (before the image: not its caption)\n\n" +
        "![the cost](charts/a.svg)\n\nOne run on a shared machine.\n\n" +
        "`deno task run 11 bench` (too far: two paragraphs on)\n",
    }, async (root) => {
      const problems = await chartProblems(root);
      assert.equal(problems.length, 1, problems.join("\n"));
      assert.match(problems[0], /^docs\/01-a\.md:3 embeds charts\/a\.svg without the command/);
    });
  },
);

Deno.test("svgProblem: what the benches write parses", async () => {
  const { renderChart } = await import("workbook/chart");
  const svg = await renderChart({
    data: { values: [{ n: 10, us: 2 }, { n: 100, us: 4 }] },
    mark: "line",
    encoding: {
      x: { field: "n", type: "quantitative" },
      y: { field: "us", type: "quantitative", title: "µs & <more>" },
    },
  });
  assert.equal(svgProblem(svg), undefined);
});
