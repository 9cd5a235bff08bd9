/** `segcause queue status|retry|drain`: the state of evaluate's queue on Redis. */
import { Command } from "commander";
import { queueDrain, queueRetry, queueStatus } from "../queue/admin.js";
import { addOutputFlags, emit, type OutputFlags } from "./output.js";

const url = "Redis of the queue: redis://host:6379/0 (rediss:// for TLS; a password in $SEGCAUSE_REDIS_PASSWORD)";

export function queueCommand(): Command {
  const cmd = new Command("queue").description("the queue of `segcause evaluate --queue`: status, retry failed jobs, drain waiting ones");
  cmd.addCommand(
    addOutputFlags(
      new Command("status")
        .description("jobs waiting, running, failed (with their error) and done, and the cost so far")
        .requiredOption("--queue <url>", url),
    ).action(async (f: { queue: string } & OutputFlags) => {
      const s = await queueStatus(f.queue);
      emit(
        f,
        () => s.lines.join("\n"),
        () => ({ format: "segcause.queue-status/1", ...s.json }),
      );
    }),
  );
  cmd.addCommand(
    addOutputFlags(
      new Command("retry").description("put the failed jobs back in the queue (refused cells stay refused)").requiredOption("--queue <url>", url),
    ).action(async (f: { queue: string } & OutputFlags) => {
      const n = await queueRetry(f.queue);
      emit(
        f,
        () =>
          `${n.retried} failed job(s) queued again${n.refused ? `, ${n.refused} refusal(s) kept` : ""}${n.removed ? `, ${n.removed} rejected job(s) removed (their ids can be queued again)` : ""}`,
        () => ({ format: "segcause.queue-retry/1", ...n }),
      );
    }),
  );
  cmd.addCommand(
    addOutputFlags(
      new Command("drain").description("remove the jobs that wait (running and finished jobs stay)").requiredOption("--queue <url>", url),
    ).action(async (f: { queue: string } & OutputFlags) => {
      const n = await queueDrain(f.queue);
      emit(
        f,
        () => `${n.removed} waiting job(s) removed`,
        () => ({ format: "segcause.queue-drain/1", ...n }),
      );
    }),
  );
  return cmd;
}
