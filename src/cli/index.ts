/** The segcause command line: a thin layer over the library. */
import { Command, CommanderError } from "commander";
import { SegcauseError } from "../errors.js";
import { VERSION } from "../version.js";
import { bankCommand } from "./bank.js";
import { componentsCommand } from "./components.js";
import { demoCommand } from "./demo.js";
import { evaluateCommand } from "./evaluate.js";
import { explainCommand, methodsCommand } from "./explain.js";
import { infoCommand } from "./info.js";
import { strategiesCommand } from "./strategies.js";

export function program(): Command {
  const p = new Command("segcause")
    .description("causal explanations (PdCR) for image segmentation models given as ONNX")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const c of [explainCommand(), methodsCommand(), componentsCommand(), bankCommand(), infoCommand(), demoCommand(), evaluateCommand(), strategiesCommand()]) p.addCommand(c.exitOverride());
  return p;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
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
    process.stderr.write(`segcause: internal error: ${(e as Error).message} (this is a bug; rerun with SEGCAUSE_DEBUG=1 for the stack trace and report it)\n`);
    process.exitCode = 2;
  }
}
