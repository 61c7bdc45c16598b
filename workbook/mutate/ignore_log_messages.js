// A StrykerJS "ignorer" plugin: the workbook's one rule for what mutation testing leaves out
// inside solution regions. What a program logs is for the person watching it, not graded
// behaviour, so a call that logs is not mutated: `log.info(…)`, `chatLog.warn(…)`,
// `logger.error(…)`, `console.error(…)` — any call of a logging method on `console`, `log`,
// `logger`, or a name ending in `Log` or `Logger`. (Code outside `#region solution` marks
// is given to the learner and is never mutated: the runner passes only region lines.)
// Plain JavaScript with no imports, so Stryker loads it under Deno without a node_modules.

const LOGGER = /^(log|logger|console)$|[a-z0-9](Log|Logger)$/;
const LEVELS = new Set(["trace", "debug", "info", "warn", "warning", "error", "fatal", "log"]);

/** True for `x.level(…)` where x names a logger. */
export function isLoggingCall(node) {
  if (node?.type !== "CallExpression") return false;
  const callee = node.callee;
  if (callee?.type !== "MemberExpression" || callee.computed) return false;
  return callee.object?.type === "Identifier" && LOGGER.test(callee.object.name) &&
    callee.property?.type === "Identifier" && LEVELS.has(callee.property.name);
}

export const strykerPlugins = [{
  kind: "Ignore",
  name: "log-messages",
  value: {
    shouldIgnore(path) {
      // Stryker's CallExpression mutator also removes a call that stands alone as a statement
      // (`log.info(…);` → `;`): that mutant sits on the ExpressionStatement, so ignore it there.
      const node = path.node?.type === "ExpressionStatement" ? path.node.expression : path.node;
      return isLoggingCall(node)
        ? "a logging call: what a program logs is for people, not graded"
        : undefined;
    },
  },
}];
