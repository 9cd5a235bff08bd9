/**
 * What the viewer's page may ask for, checked with zod before anything runs: one clear line per
 * problem (the same `problem (fix)` form as the CLI's errors).
 */
import { z } from "zod";
import { allMethods, methodNames } from "../explain/catalog.js";
import { kebab } from "../explain/methods.js";

/** Flag names of method options (`block`, `map-noise`, …): the only options a request may set, so it cannot set --model or --out. */
const METHOD_FLAGS = new Set(allMethods().flatMap((m) => m.options.map((o) => kebab(o.name))));

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
    options: z
      .record(
        z.string().refine((k) => METHOD_FLAGS.has(k), { message: "not a method option (see `segcause methods --verbose`)" }),
        z.union([z.number(), z.string().regex(/^(?!-)[\w.,:+-]{1,200}$/, "a number or a word")]),
      )
      .default({}),
  })
  .strict();
export type RunRequest = z.infer<typeof RunRequest>;

/** The first zod issue as one line: where, what. */
export function describeIssue(e: z.ZodError): string {
  const i = e.issues[0];
  const where = i.path.length ? `${i.path.join(".")}: ` : "";
  // a record's bad key carries the key check's own message inside
  const inner = i.code === "invalid_key" ? i.issues[0]?.message : undefined;
  return `${where}${inner ?? i.message}`;
}

/** The `segcause explain` arguments of a run: shown on the page as the equivalent command, and parsed by the run's child as the CLI parses them. */
export function explainArgs(r: RunRequest, out: string): string[] {
  const { row, col, height, width } = r.roi;
  const args = ["--model", r.model, "--image", r.image, "--roi", `${row},${col},${height},${width}`, "--method", r.method, "--seed", String(r.seed)];
  if (r.bank) args.push("--bank", r.bank);
  // `--flag=value`: a value is never read as a flag of its own
  for (const [k, v] of Object.entries(r.options)) args.push(`--${k}=${v}`);
  args.push("--out", out);
  return args;
}

/** A shell-safe rendering of the command (POSIX quoting where needed). */
export function shellCommand(args: string[]): string {
  return ["segcause", "explain", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ");
}
