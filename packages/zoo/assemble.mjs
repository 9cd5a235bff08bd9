// Builds @segcause/zoo from the repository at pack time: the models and cards live once, in the
// repository's models/ folder; this copies them (and the licence and the zoo's README) in, and
// `--clean` removes the copies after packing so that git holds no second copy.
import { cpSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const copies = [join(here, "models"), join(here, "README.md"), join(here, "LICENSE")];

for (const p of copies) rmSync(p, { recursive: true, force: true });
if (!process.argv.includes("--clean")) {
  const models = readdirSync(join(repo, "models")).filter((f) => f.endsWith(".onnx"));
  for (const f of models) {
    cpSync(join(repo, "models", f), join(here, "models", f));
    cpSync(join(repo, "models", `${f}.json`), join(here, "models", `${f}.json`));
  }
  cpSync(join(repo, "models", "README.md"), join(here, "README.md"));
  cpSync(join(repo, "LICENSE"), join(here, "LICENSE"));
}
