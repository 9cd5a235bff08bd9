/**
 * Redis URLs as they may be shown or recorded: without their password. Every recorded command line
 * (run.json, runs/, manifests, an output folder's lock file) goes through redactCommand.
 */

/**
 * How the URL is shown in messages and recorded command lines: the password is never printed. The
 * user part ends at the last `@` (a password may hold `@` or `/`, as a URL parser reads it).
 */
export function redactUrl(url: string): string {
  const start = url.indexOf("://");
  const at = url.lastIndexOf("@");
  if (start < 0 || at < start) return url;
  const user = url.slice(start + 3, at);
  const colon = user.indexOf(":");
  return colon < 0 ? url : `${url.slice(0, start + 3)}${user.slice(0, colon)}:***${url.slice(at)}`;
}

/** A command line as recorded (run.json, runs/, reports): Redis URLs with their password redacted. */
export function redactCommand(argv: string[]): string[] {
  return argv.map((a) => (/rediss?:\/\//.test(a) ? a.replace(/rediss?:\/\/.*/, (u) => redactUrl(u)) : a));
}
