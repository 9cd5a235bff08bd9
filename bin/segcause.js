#!/usr/bin/env node
import { existsSync } from "node:fs";

// dist/ ships in the npm package; a source checkout builds it with `npm run build`.
const cli = new URL("../dist/cli/index.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("segcause: error: dist/ is not built (in a source checkout, run `npm run build` first)\n");
  process.exit(1);
}
const { main } = await import(cli.href);
main(process.argv);
