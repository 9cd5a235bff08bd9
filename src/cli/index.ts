/** The segcause command line: a thin layer over the library. */
import { Command, CommanderError } from "commander";
import { SegcauseError } from "../errors.js";
import { ioProblem } from "../util/atomic.js";
import { installInterruptHandlers } from "../util/interrupt.js";
import { VERSION } from "../version.js";
import { bankCommand } from "./bank.js";
import { componentsCommand } from "./components.js";
import { datasetCommand } from "./dataset.js";
import { demoCommand } from "./demo.js";
import { evaluateCommand } from "./evaluate.js";
import { addExamples } from "./examples.js";
import { explainCommand, methodsCommand } from "./explain.js";
import { infoCommand } from "./info.js";
import { queueCommand } from "./queue.js";
import { strategiesCommand } from "./strategies.js";
import { viewCommand } from "./view.js";
import { workerCommand } from "./worker.js";
import { zooCommand } from "./zoo.js";

export function program(): Command {
  const p = new Command("segcause").description("causal explanations (PdCR) for image segmentation models given as ONNX").version(VERSION);
  for (const c of [
    explainCommand(),
    methodsCommand(),
    componentsCommand(),
    bankCommand(),
    datasetCommand(),
    infoCommand(),
    demoCommand(),
    evaluateCommand(),
    strategiesCommand(),
    zooCommand(),
    viewCommand(),
    workerCommand(),
    queueCommand(),
  ]) {
    addExamples(c);
    p.addCommand(c.exitOverride());
  }
  oneLineErrors(p, "segcause");
  return p;
}

/**
 * Commander's own parse errors (unknown option, missing argument, unknown command) in the project's
 * format: one line `segcause: error: <problem> (<fix>)`, on every (sub)command.
 */
function oneLineErrors(cmd: Command, path: string): void {
  cmd.exitOverride().configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (str, write) => {
      const lines = str
        .trim()
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      const problem = (lines[0] ?? "invalid command line").replace(/^error:\s*/, "");
      const hints = [...lines.slice(1).map((l) => l.replace(/^\((.*)\)$/, "$1")), `see \`${path} --help\``];
      write(`segcause: error: ${problem} (${hints.join("; ")})\n`);
    },
  });
  for (const c of cmd.commands) oneLineErrors(c, `${path} ${c.name()}`);
}

export async function main(argv: string[]): Promise<void> {
  installInterruptHandlers();
  // A rejection nobody awaits (e.g. a Redis command cut off by the lost connection the run has just reported in one line) is
  // a consequence of the reported failure, not a second one; before any report it is a bug, said in one line.
  process.on("unhandledRejection", (reason) => {
    if (process.exitCode) return;
    if (reason instanceof SegcauseError) {
      process.stderr.write(`segcause: error: ${reason.oneLine()}\n`);
      process.exit(1);
    }
    if (process.env.SEGCAUSE_DEBUG) console.error(reason);
    process.stderr.write(
      `segcause: internal error: ${reason instanceof Error ? reason.message : String(reason)} (this is a bug; rerun with SEGCAUSE_DEBUG=1 for the stack trace and report it)\n`,
    );
    process.exit(2);
  });
  try {
    await program().parseAsync(argv);
  } catch (thrown) {
    // A full disk, a quota or a read-only folder is the user's condition, not a bug.
    const e = ioProblem(thrown) ?? thrown;
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    if (e instanceof SegcauseError) {
      process.stderr.write(`segcause: error: ${e.oneLine()}\n`);
      process.exitCode = 1;
      return;
    }
    if (process.env.SEGCAUSE_DEBUG) console.error(e);
    process.stderr.write(
      `segcause: internal error: ${(e as Error).message} (this is a bug; rerun with SEGCAUSE_DEBUG=1 for the stack trace and report it)\n`,
    );
    process.exitCode = 2;
  }
}
