/** `segcause zoo list`: the bundled models (the demo model, and the model zoo when installed) and where they are. */
import { Command } from "commander";
import { type BundledModel, findZoo, models, ZOO_INSTALL, ZOO_PACKAGE } from "../model/bundled.js";

export function zooCommand(): Command {
  const zoo = new Command("zoo").description(`the bundled models (the model zoo is the package ${ZOO_PACKAGE})`);
  zoo
    .command("list")
    .description("list the bundled models with their dataset, input and test Dice, and the path to give --model")
    .action(() => {
      const list = models();
      const rows = list.map((m) => [m.name, m.card.dataset ?? "-", inputOf(m), diceOf(m), m.path]);
      const head = ["model", "dataset", "input", "Dice", "path"];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")}\n`);
      const installed = findZoo();
      process.stdout.write(
        installed
          ? `${list.length} models; ${ZOO_PACKAGE} ${installed.version} is installed at ${installed.root}\n`
          : `${list.length} model${list.length === 1 ? "" : "s"}; the model zoo is not installed (${ZOO_INSTALL} adds it)\n`,
      );
    });
  return zoo;
}

function inputOf(m: BundledModel): string {
  const i = m.card.input;
  return `${i.height}x${i.width} ${i.channels}`;
}

function diceOf(m: BundledModel): string {
  const x = m.card.metrics as { dice_mean?: number; n?: number; split?: string } | undefined;
  return typeof x?.dice_mean === "number" ? `${x.dice_mean.toFixed(3)} (mean over ${x.n ?? "?"} ${x.split ?? "test"} images)` : "-";
}
