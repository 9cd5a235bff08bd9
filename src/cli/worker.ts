/** `segcause worker`: computes evaluate's queued cells (see docs/scale-out.md). */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { DEFAULT_MAX_MODELS, runWorker } from "../queue/worker.js";
import { markResumable } from "../util/interrupt.js";
import { intAtLeast } from "./options.js";

/** Where a worker keeps the inputs it fetched (verified by sha256) unless --cache is given. */
export function defaultWorkerCache(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "segcause", "worker");
}

export function workerCommand(): Command {
  return new Command("worker")
    .description(
      "pull the cells of `segcause evaluate --queue` and the shards of `segcause explain --queue` from Redis and compute them (run one or more per machine)",
    )
    .requiredOption(
      "--queue <url>",
      "Redis of the queue: redis://host:6379/0, rediss:// for TLS; a password in $SEGCAUSE_REDIS_PASSWORD (or redis://:password@host:6379/0)",
    )
    .option("--concurrency <n>", "jobs computed at once by this process", intAtLeast("concurrency"), 1)
    .option(
      "--cache <dir>",
      "where fetched models, images and banks are kept (default $XDG_CACHE_HOME/segcause/worker, else ~/.cache/segcause/worker)",
    )
    .option("--stall-seconds <s>", "a job whose worker stops answering for this long goes to another worker (once)", intAtLeast("stall-seconds"), 30)
    .option(
      "--max-models <n>",
      "models kept loaded at once (each holds ONNX Runtime sessions); the least recently used is released first",
      intAtLeast("max-models"),
      DEFAULT_MAX_MODELS,
    )
    .option("--quiet", "no log lines on stderr")
    .action(async (f: { queue: string; concurrency: number; cache?: string; stallSeconds: number; maxModels: number; quiet?: boolean }) => {
      // Ctrl-C or SIGTERM: jobs finished are in Redis; the one in progress goes to another worker after --stall-seconds
      markResumable("outputs");
      const log = f.quiet ? () => {} : (l: string) => process.stderr.write(`[${new Date().toISOString()}] ${l}\n`);
      // runs until killed
      await runWorker(
        {
          url: f.queue,
          concurrency: f.concurrency,
          cache: resolve(f.cache ?? defaultWorkerCache()),
          stallSeconds: f.stallSeconds,
          maxModels: f.maxModels,
          log,
        },
        new AbortController().signal,
      );
    });
}
