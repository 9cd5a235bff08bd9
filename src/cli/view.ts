/** `segcause view`: a local browser viewer over the library (src/view/). */
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { Command } from "commander";
import { fail } from "../errors.js";
import { checkOutputDir } from "../util/files.js";
import { isLoopback, startViewServer } from "../view/server.js";

interface ViewFlags {
  model?: string;
  image?: string;
  bank?: string;
  results?: string;
  dataset?: string;
  runs: string;
  port: number;
  host?: string;
  open: boolean;
}

/** The platform's "open this address" command; failures are ignored (the address is printed). */
function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["cmd", ["/c", "start", "", url]] : ["xdg-open", [url]];
  const child = spawn(cmd, args, { stdio: "ignore", detached: true });
  child.on("error", () => {});
  child.unref();
}

function ipAddress(v: string): string {
  if (isIP(v) === 0) fail(`--host must be an IP address, got '${v}'`, "e.g. --host 127.0.0.1 (the default), or --host 0.0.0.0 for every interface");
  return v;
}

function portNumber(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= 65535)) fail(`--port must be an integer in 0..65535, got '${v}'`, "e.g. --port 8080, or leave it out for a free port");
  return n;
}

export function viewCommand(): Command {
  return new Command("view")
    .description("local browser viewer: draw a RoI, run methods, look at their maps (127.0.0.1 unless --host)")
    .option("--model <file>", "an ONNX model (2D, or 3D with a volume card) to offer besides the bundled ones")
    .option("--image <file>", "an image, a NIfTI volume or a DICOM series (folder or file) to offer besides the samples (more can be dropped)")
    .option(
      "--bank <file>",
      "a patch bank for pdcr and pdcr-superpixel (the sample bank is offered too), or a volume bank (.scvbank) for pdcr on volumes",
    )
    .option("--results <dir>", "an explain, components or evaluate results folder, or a folder of them, to open")
    .option(
      "--dataset <manifest>",
      "a data set manifest (or its folder) of 2D images or volumes: its cases are listed; a volume data set's train split gives pdcr on volumes its bank",
    )
    .option("--runs <dir>", "where the viewer's runs write their output folders", "segcause-view-runs")
    .option("--port <n>", "port (default: a free one)", portNumber, 0)
    .option(
      "--host <address>",
      "the IP address to listen on (default 127.0.0.1, this machine only); another address serves every machine that reaches it, protected by the token alone, without TLS",
      ipAddress,
    )
    .option("--no-open", "print the address only, do not open a browser")
    .action(async (f: ViewFlags) => {
      for (const [flag, p] of [
        ["--model", f.model],
        ["--image", f.image],
        ["--bank", f.bank],
        ["--results", f.results],
        ["--dataset", f.dataset],
      ] as const)
        if (p !== undefined && !existsSync(p)) fail(`${flag} ${p} does not exist`, `check the path, or drop ${flag}`);
      // folders, checked now rather than as an error on the page (--runs is created when missing)
      if (f.results !== undefined && !statSync(f.results).isDirectory())
        fail(`--results ${f.results} is a file, not a folder`, "give --results a results folder, or a folder of them");
      checkOutputDir(f.runs, "--runs");
      const v = await startViewServer({
        model: f.model,
        image: f.image,
        bank: f.bank,
        results: f.results,
        dataset: f.dataset,
        runs: resolve(f.runs),
        port: f.port,
        host: f.host,
      }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE") fail(`port ${f.port} is in use`, "pick another --port, or leave it out for a free one");
        if (e.code === "EADDRNOTAVAIL")
          fail(`--host ${f.host} is not an address of this machine`, "give one of its own addresses, or leave --host out for 127.0.0.1");
        throw e;
      });
      if (f.host !== undefined && !isLoopback(f.host))
        process.stderr.write(
          `segcause view: warning: listening on ${f.host}, not only this machine: anyone who can reach it and has the address with its token can run models and read the folders given here; the connection is not encrypted (use an SSH tunnel to 127.0.0.1 instead where you can)\n`,
        );
      process.stdout.write(`segcause view: ${v.url}\n  runs write to ${resolve(f.runs)}; Ctrl-C stops the server\n`);
      if (f.open) openBrowser(v.url);
      // Serves until Ctrl-C (the CLI's interrupt handler ends the process and the runs checkpoint).
      await new Promise<never>(() => {});
    });
}
