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
    roi: z
      .object({ row: pixel, col: pixel, height: pixel.min(1), width: pixel.min(1) })
      .strict()
      .optional(),
    /** or, on a volume, a voxel box of the input volume, as `--roi z,y,x,d,h,w` */
    roiBox: z
      .object({ z: pixel, y: pixel, x: pixel, d: pixel.min(1), h: pixel.min(1), w: pixel.min(1) })
      .strict()
      .optional(),
    /** or, on a volume, labels of a label map on its grid (a data set case's), as `--roi-mask <labels> --label 1,2` */
    roiLabels: z
      .object({ labels: path, label: z.string().regex(/^\d{1,5}(,\d{1,5}){0,31}$/, "label numbers separated by commas, e.g. 1,2") })
      .strict()
      .optional(),
    /** or a RoI mask (brushed, or a component of the prediction) in model-input pixels: row-major bits, 8 a byte, most significant first, base64 */
    roiMask: z
      .object({
        height: pixel.min(1).max(4096),
        width: pixel.min(1).max(4096),
        bits: z
          .string()
          .max(48 * 1024)
          .regex(/^[A-Za-z0-9+/]*={0,2}$/, "base64"),
      })
      .strict()
      .optional(),
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
  .strict()
  .refine((r) => [r.roi, r.roiMask, r.roiBox, r.roiLabels].filter((x) => x !== undefined).length === 1, {
    message:
      "give the RoI as one of roi (a rectangle), roiMask (a mask), roiBox (a voxel box of a volume) or roiLabels (labels of a volume's label map)",
  });
export type RunRequest = z.infer<typeof RunRequest>;

/** A request's RoI mask as 0/1 per pixel, or a line saying what is wrong with it. */
export function decodeRoiMask(m: NonNullable<RunRequest["roiMask"]>): Uint8Array | string {
  const bytes = Buffer.from(m.bits, "base64");
  const n = m.height * m.width;
  if (bytes.length !== Math.ceil(n / 8))
    return `roiMask.bits: ${bytes.length} bytes for ${m.height}×${m.width} pixels (expected ${Math.ceil(n / 8)})`;
  const mask = new Uint8Array(n);
  let on = 0;
  for (let p = 0; p < n; p++) on += mask[p] = (bytes[p >> 3] >> (7 - (p & 7))) & 1;
  if (on === 0) return "roiMask: no pixel is in the RoI (brush or click on the image first)";
  if (on === n) return "roiMask: every pixel is in the RoI (it must leave some of the image out)";
  return mask;
}

/** The first zod issue as one line: where, what. */
export function describeIssue(e: z.ZodError): string {
  const i = e.issues[0];
  const where = i.path.length ? `${i.path.join(".")}: ` : "";
  // a record's bad key carries the key check's own message inside
  const inner = i.code === "invalid_key" ? i.issues[0]?.message : undefined;
  return `${where}${inner ?? i.message}`;
}

/** The `segcause explain` arguments of a run: shown on the page as the equivalent command, and parsed by the run's child as the CLI parses them. */
export function explainArgs(r: RunRequest, out: string, roiMaskPath?: string): string[] {
  const b = r.roiBox;
  const roi = r.roi
    ? ["--roi", `${r.roi.row},${r.roi.col},${r.roi.height},${r.roi.width}`]
    : b
      ? ["--roi", `${b.z},${b.y},${b.x},${b.d},${b.h},${b.w}`]
      : r.roiLabels
        ? ["--roi-mask", r.roiLabels.labels, "--label", r.roiLabels.label]
        : ["--roi-mask", roiMaskPath!];
  const args = ["--model", r.model, "--image", r.image, ...roi, "--method", r.method, "--seed", String(r.seed)];
  if (r.bank) args.push("--bank", r.bank);
  // `--flag=value`: a value is never read as a flag of its own
  for (const [k, v] of Object.entries(r.options)) args.push(`--${k}=${v}`);
  args.push("--out", out);
  return args;
}

/** A shell-safe rendering of the command (POSIX quoting where needed). */
export function shellCommand(args: string[], command = "explain"): string {
  return ["segcause", ...command.split(" "), ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ");
}
