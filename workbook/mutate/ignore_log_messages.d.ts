/** True for a call of a logging method on `console`, `log`, `logger`, or a name ending in `Log`/`Logger`. */
export function isLoggingCall(node: unknown): boolean;
/** The StrykerJS plugin list: one ignorer named "log-messages". */
export const strykerPlugins: {
  kind: "Ignore";
  name: string;
  value: { shouldIgnore(path: { node: unknown }): string | undefined };
}[];
