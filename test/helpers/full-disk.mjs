// Preloaded into a CLI child (node --import): every file whose path matches
// SEGCAUSE_TEST_FULL_DISK (a regular expression) fails to be written with ENOSPC, as on a full disk.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const pattern = new RegExp(process.env.SEGCAUSE_TEST_FULL_DISK ?? "^$");
// SEGCAUSE_TEST_FULL_DISK_CODE: the error instead of ENOSPC (e.g. EDQUOT, EROFS, EACCES)
const code = process.env.SEGCAUSE_TEST_FULL_DISK_CODE ?? "ENOSPC";
const enospc = () => Object.assign(new Error(`${code}: write failed (injected), write`), { code, syscall: "write" });
const open = fs.promises.open;
fs.promises.open = async function (path, ...rest) {
  const h = await open.call(this, path, ...rest);
  if (pattern.test(String(path)))
    h.writeFile = async () => {
      throw enospc();
    };
  return h;
};
const writeFileSync = fs.writeFileSync;
fs.writeFileSync = function (path, ...rest) {
  if (pattern.test(String(path))) throw enospc();
  return writeFileSync.call(this, path, ...rest);
};
syncBuiltinESMExports();

// SEGCAUSE_TEST_READ_ONLY (a regular expression): creating or writing a file whose path matches
// fails with EROFS, as on a read-only mount (which root cannot write either).
const readOnly = new RegExp(process.env.SEGCAUSE_TEST_READ_ONLY ?? "^$");
const erofs = (path) =>
  Object.assign(new Error(`EROFS: read-only file system, open '${path}'`), { code: "EROFS", errno: -30, syscall: "open", path: String(path) });
const writes = (flags) => typeof flags === "string" && /[wa+]/.test(flags);
const openSync = fs.openSync;
fs.openSync = function (path, flags, ...rest) {
  if (writes(flags) && readOnly.test(String(path))) throw erofs(path);
  return openSync.call(this, path, flags, ...rest);
};
const openAsync = fs.promises.open;
fs.promises.open = async function (path, flags, ...rest) {
  if (writes(flags) && readOnly.test(String(path))) throw erofs(path);
  return openAsync.call(this, path, flags, ...rest);
};
syncBuiltinESMExports();
