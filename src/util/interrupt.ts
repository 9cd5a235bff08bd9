/**
 * Ctrl-C and kill: work that is only in memory (samples not yet checkpointed) is written out
 * synchronously before the process exits, and the user is told that a rerun continues.
 */
import { removeInFlightTemps } from "./atomic.js";

interface Saver {
  /** writes unsaved work; true if it wrote any */
  saveIfDirty(): boolean;
  /** how much finished work a rerun would find (samples) */
  readonly kept: number;
}
const savers = new Set<WeakRef<Saver>>();

/** Registers an object whose unsaved work is written on interruption (held weakly: finished work is dropped). */
export function saveOnInterrupt(owner: Saver): void {
  for (const r of savers) if (!r.deref()) savers.delete(r);
  savers.add(new WeakRef(owner));
}

let resumable: "outputs" | "checkpoints" | undefined;
let interrupted = false;
const closers = new Set<WeakRef<{ closeForExit(): Promise<void> }>>();

/**
 * Registers an owner of worker threads running native code (ONNX Runtime sessions): on interruption
 * their batches in flight finish and the threads stop before the process exits. Exiting under a
 * running native call aborts the process (exit 134) instead of the promised 130/143.
 */
export function closeOnInterrupt(owner: { closeForExit(): Promise<void> }): void {
  for (const r of closers) if (!r.deref()) closers.delete(r);
  closers.add(new WeakRef(owner));
}

/** True once Ctrl-C or kill arrived: no new work should start. */
export function isInterrupted(): boolean {
  return interrupted;
}

/**
 * Called by commands that a rerun continues, so the message says so: "outputs" when finished results
 * are kept as files (evaluate's cells), "checkpoints" when only checkpointed samples are (explain,
 * components: a run stopped before its first sample keeps nothing).
 */
export function markResumable(kind: "outputs" | "checkpoints"): void {
  resumable = kind;
}

/**
 * Writes the unsaved work of every registered owner, synchronously; how many owners wrote some
 * and how many finished samples a rerun finds.
 */
export function saveInterruptedWork(): { saved: number; kept: number } {
  let saved = 0,
    kept = 0;
  for (const r of savers) {
    try {
      const o = r.deref();
      if (o?.saveIfDirty()) saved++;
      kept += o?.kept ?? 0;
    } catch {
      // a checkpoint that cannot be written now loses only its last few seconds
    }
  }
  return { saved, kept };
}

/** Installs the handlers once per process (the CLI's entry point does). */
export function installInterruptHandlers(): void {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      interrupted = true;
      const { saved, kept } = saveInterruptedWork();
      const next =
        !resumable || (resumable === "checkpoints" && kept === 0)
          ? `${resumable ? "nothing had finished yet, so " : ""}a rerun starts over`
          : `finished work is kept${saved ? " (unsaved samples were checkpointed)" : ""}: rerun the same command to continue where it stopped`;
      process.stderr.write(`\nsegcause: interrupted (${signal}); ${next}\n`);
      const closing = [...closers].map((r) => r.deref()?.closeForExit());
      const timeout = new Promise((resolve) => setTimeout(resolve, 10_000).unref());
      // Batches in flight when the signal came finish while the sessions close: their samples are saved too.
      void Promise.race([Promise.allSettled(closing), timeout]).then(() => {
        saveInterruptedWork();
        removeInFlightTemps();
        process.exit(code);
      });
    });
  }
}
