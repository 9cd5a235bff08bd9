// Preloaded into a CLI child (node --import): every file whose path matches
// SEGCAUSE_TEST_FULL_DISK (a regular expression) fails to be written with ENOSPC, as on a full disk.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const pattern = new RegExp(process.env.SEGCAUSE_TEST_FULL_DISK ?? "^$");
const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
const open = fs.promises.open;
fs.promises.open = async function (path, ...rest) {
  const h = await open.call(this, path, ...rest);
  if (pattern.test(String(path))) h.writeFile = async () => { throw enospc(); };
  return h;
};
const writeFileSync = fs.writeFileSync;
fs.writeFileSync = function (path, ...rest) {
  if (pattern.test(String(path))) throw enospc();
  return writeFileSync.call(this, path, ...rest);
};
syncBuiltinESMExports();
