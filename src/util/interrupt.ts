/**
 * Ctrl-C and kill: work that is only in memory (samples not yet checkpointed) is written out
 * synchronously before the process exits, and the user is told that a rerun continues.
 */
const savers = new Set<WeakRef<{ saveIfDirty(): boolean }>>();

/** Registers an object whose unsaved work is written on interruption (held weakly: finished work is dropped). */
export function saveOnInterrupt(owner: { saveIfDirty(): boolean }): void {
  for (const r of savers) if (!r.deref()) savers.delete(r);
  savers.add(new WeakRef(owner));
}

let resumable = false;

/** Called by commands that a rerun continues (explain, components, evaluate), so the message says so. */
export function markResumable(): void {
  resumable = true;
}

/** Installs the handlers once per process (the CLI's entry point does). */
export function installInterruptHandlers(): void {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(signal, () => {
      let saved = 0;
      for (const r of savers) {
        try {
          const o = r.deref();
          if (o?.saveIfDirty()) saved++;
        } catch {
          // a checkpoint that cannot be written now loses only its last few seconds
        }
      }
      const next = resumable ? `finished work is kept${saved ? " (unsaved samples were checkpointed)" : ""}: rerun the same command to continue where it stopped` : "a rerun starts over";
      process.stderr.write(`\nsegcause: interrupted (${signal}); ${next}\n`);
      process.exit(code);
    });
  }
}
