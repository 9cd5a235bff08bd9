/**
 * What the viewer's page may ask for, checked with zod before anything runs: one clear line per
 * problem (the same `problem (fix)` form as the CLI's errors).
 */
import { z } from "zod";
import { methodNames } from "../explain/catalog.js";

const path = z.string().min(1).max(4096);
const pixel = z.number().int().min(0).max(100_000);

export const PredictRequest = z.object({ model: path, image: path }).strict();
export type PredictRequest = z.infer<typeof PredictRequest>;

export const RunRequest = z
  .object({
    model: path,
    image: path,
    bank: path.optional(),
    /** RoI rectangle in model-input pixels, as `--roi row,col,height,width` */
    roi: z.object({ row: pixel, col: pixel, height: pixel.min(1), width: pixel.min(1) }).strict(),
    method: z.string().refine((m) => methodNames().includes(m), { message: `unknown method (known: ${methodNames().join(", ")})` }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    /** method options by flag name (e.g. block: 16), checked by the method's own declaration in the run */
    options: z.record(z.string().regex(/^[a-z][a-z-]*$/), z.union([z.number(), z.string().max(200)])).default({}),
  })
  .strict();
export type RunRequest = z.infer<typeof RunRequest>;

/** The first zod issue as one line: where, what. */
export function describeIssue(e: z.ZodError): string {
  const i = e.issues[0];
  const where = i.path.length ? `${i.path.join(".")}: ` : "";
  return `${where}${i.message}`;
}

/** The `segcause explain` arguments of a run: shown on the page as the equivalent command, and parsed by the run's child as the CLI parses them. */
export function explainArgs(r: RunRequest, out: string): string[] {
  const { row, col, height, width } = r.roi;
  const args = ["--model", r.model, "--image", r.image, "--roi", `${row},${col},${height},${width}`, "--method", r.method, "--seed", String(r.seed)];
  if (r.bank) args.push("--bank", r.bank);
  for (const [k, v] of Object.entries(r.options)) args.push(`--${k}`, String(v));
  args.push("--out", out);
  return args;
}

/** A shell-safe rendering of the command (POSIX quoting where needed). */
export function shellCommand(args: string[]): string {
  return ["segcause", "explain", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ");
}
