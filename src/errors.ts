/**
 * A problem with the user's input or settings. The CLI prints `message` as one line (plus the hint)
 * and exits non-zero; anything else that is thrown is a bug and is reported as such.
 */
export class SegcauseError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "SegcauseError";
  }

  /** One line for a terminal: the problem, then what to do about it. */
  oneLine(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

export function fail(message: string, hint?: string): never {
  throw new SegcauseError(message, hint);
}
