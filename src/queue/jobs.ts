/**
 * The only jobs a worker runs, and what they return: a RoI's controls and one cell of evaluate, and
 * one shard of an `explain --queue` map.
 * Every payload and every return value is checked against these schemas before it is used; a job of
 * another name or shape is rejected (logged, failed without retry), never run.
 */
import { z } from "zod";
import { FILL_NAMES } from "../evaluate/fills.js";
import { CONTROL_NAMES } from "../evaluate/protocol.js";
import { INCREMENTAL_MODES, type IncrementalMode } from "../explain/roi-executor.js";
import { BOX_UNITS } from "../explain/volume/box-size.js";
import { SLICE_AXES } from "../model/slice-model.js";
import { OUTCOMES } from "../target/outcome.js";

/** Bumped when a payload's meaning changes: a worker refuses jobs of another version. */
export const JOB_VERSION = 1;

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const blob = z.object({ sha256: sha, name: z.string().min(1).max(200) }).strict();
const count = z.number().int().min(1).max(1_000_000);
const finite = z.number().finite();
const fraction = z.number().gt(0).lte(1);
const name = z.string().min(1).max(500);

const protocol = z
  .object({
    steps: count,
    rankUnits: z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("pixel") }).strict(),
      z.object({ kind: z.literal("block"), size: count }).strict(),
      z.object({ kind: z.literal("superpixel"), segments: count }).strict(),
    ]),
    fills: z.array(z.enum(FILL_NAMES)).min(1),
    patchDraws: count,
    blurSigma: finite,
    topk: z.array(fraction),
    topArea: z.array(fraction),
    controls: z.array(z.enum(CONTROL_NAMES)),
    radius: z.number().min(0),
    minRange: finite,
    stability: z.boolean(),
    noiseSigma: z.number().min(0),
    outcome: z.enum(OUTCOMES as [string, ...string[]]),
    reference: z.enum(["auto", "ground-truth", "prediction"]),
  })
  .strict();

const rect = z.object({ row: z.number().int().min(0), col: z.number().int().min(0), height: count, width: count }).strict();

/** What every job of a (model, image, RoI) carries: its inputs as blobs and the run's settings. */
const roiJob = z.object({
  v: z.literal(JOB_VERSION),
  id: z.object({ dataset: name, model: name, image: name, roi: name }).strict(),
  model: blob,
  card: blob.nullable(),
  image: blob,
  mask: blob.nullable(),
  bank: blob.nullable(),
  roi: z.object({ id: name, kind: z.enum(["boundary", "inside", "outside", "file"]), rect }).strict(),
  protocol,
  seed: z.number().int(),
  batchSize: count.optional(),
  threads: count.optional(),
  /** evaluate --incremental on|auto (absent: off) */
  incremental: z.enum(["auto", "on"]).optional(),
});

export const ControlJob = roiJob.extend({ controlKey: sha }).strict();
export type ControlJob = z.infer<typeof ControlJob>;

export const CellJob = roiJob
  .extend({
    cellKey: sha,
    method: z.object({ name: z.string().min(1).max(100), options: z.record(z.string(), z.unknown()) }).strict(),
    /** the RoI's control record (its end points are the cell's) */
    control: z
      .object({
        format: z.literal("segcause.evalcontrol/1"),
        key: sha,
        status: z.literal("ok"),
        fills: z.partialRecord(
          z.enum(FILL_NAMES),
          z.object({ ends: z.object({ base: z.number().nullable(), removed: z.number().nullable() }).passthrough() }).passthrough(),
        ),
      })
      .passthrough(),
  })
  .strict();
export type CellJob = z.infer<typeof CellJob>;

/**
 * What every job of a volume data set's (model, case, structure) carries (evaluate --queue on volumes):
 * its inputs as blobs (the image as it is, or a DICOM series folder packed: `imageFolder`), the label
 * map and the labels that make the structure, the run's settings.
 */
const volumeRoiJob = z.object({
  v: z.literal(JOB_VERSION),
  id: z.object({ dataset: name, model: name, image: name, roi: name }).strict(),
  model: blob,
  card: blob.nullable(),
  image: blob,
  imageFolder: z.boolean(),
  series: z.string().min(1).max(200).optional(),
  mask: blob,
  /** the label map's path as the enqueuer's manifest gives it: it names the RoI (and the provenance's maskPath) */
  maskPath: z.string().min(1).max(1000),
  label: z.union([z.string().min(1).max(200), z.array(z.number().int())]).optional(),
  bank: blob.nullable(),
  boxUnit: z.enum(BOX_UNITS),
  protocol,
  seed: z.number().int(),
  batchSize: count.optional(),
  threads: count.optional(),
});

export const VolumeControlJob = volumeRoiJob.extend({ controlKey: sha }).strict();
export type VolumeControlJob = z.infer<typeof VolumeControlJob>;

export const VolumeCellJob = volumeRoiJob.extend({ cellKey: sha, method: CellJob.shape.method, control: CellJob.shape.control }).strict();
export type VolumeCellJob = z.infer<typeof VolumeCellJob>;

/**
 * The fields every map shard carries, 2D or volume: the enqueuer's versions (a worker of other versions
 * rejects the job: its samples could differ), the content-addressed inputs, the method and outcome, the
 * seed and the shard's units.
 */
const SHARD_FIELDS = {
  v: z.literal(JOB_VERSION),
  segcause: z.string().min(1).max(100),
  onnxruntime: z.string().min(1).max(100),
  model: blob,
  card: blob.nullable(),
  image: blob,
  mask: blob.nullable(),
  bank: blob.nullable(),
  method: z.object({ name: z.string().min(1).max(100), options: z.record(z.string(), z.unknown()) }).strict(),
  outcome: z.enum(OUTCOMES as [string, ...string[]]),
  reference: z.enum(["auto", "ground-truth", "prediction"]),
  seed: z.number().int(),
  threads: count.optional(),
  shard: z
    .object({ index: z.number().int().min(0), count })
    .strict()
    .refine((s) => s.index < s.count, "shard index must be below count"),
};

/**
 * A shard of one `explain --queue` map: the samples of the units u with u % count === index, under the
 * run's settings (the flags of `explain`, as the enqueuer checked them; the worker resolves them again).
 */
export const ShardJob = z
  .object({
    ...SHARD_FIELDS,
    roi: z.union([rect, z.object({ mask: blob }).strict()]),
    incremental: z.enum(INCREMENTAL_MODES as [IncrementalMode, ...IncrementalMode[]]),
    batchSize: count,
  })
  .strict();
export type ShardJob = z.infer<typeof ShardJob>;

/**
 * A shard of one `explain --queue` map of a volume (a 3D model, or a 2D model slice by slice): the
 * samples of the boxes u with u % count === index. The image is a NIfTI or DICOM file, or a DICOM
 * series folder packed into one blob (folder-blob.ts: `imageFolder`); the worker reads it with the
 * local run's readers. `roi` is a box (--roi's text) or a label map with the name the local run gives
 * its structure (the name enters the checkpoint key).
 */
export const VolumeShardJob = z
  .object({
    ...SHARD_FIELDS,
    imageFolder: z.boolean(),
    series: z.string().min(1).max(200).optional(),
    label: z.string().min(1).max(200).optional(),
    roi: z.union([z.object({ box: z.string().min(1).max(200) }).strict(), z.object({ mask: blob, name: name }).strict()]),
    boxUnit: z.enum(BOX_UNITS).optional(),
    sliceAxis: z.enum(SLICE_AXES).optional(),
    batchSize: count.optional(),
  })
  .strict();
export type VolumeShardJob = z.infer<typeof VolumeShardJob>;

export const JOB_SCHEMAS = {
  control: ControlJob,
  cell: CellJob,
  shard: ShardJob,
  "volume-shard": VolumeShardJob,
  "volume-control": VolumeControlJob,
  "volume-cell": VolumeCellJob,
} as const;
export type JobName = keyof typeof JOB_SCHEMAS;

/** What computed a worker's result (shard-env.ts): its versions (others are refused) and its machine (recorded). */
const computedBy = {
  segcause: z.string().min(1).max(100),
  onnxruntime: z.string().min(1).max(100),
  machine: z.object({ host: z.string().max(300), cpu: z.string().max(300), cores: z.number().int().min(0) }).strict(),
};

/** The notes opening the RoI gave on the worker (e.g. too few rank units for --steps): the run's summary lists them as a local run's. */
const roiNotes = z.array(z.string().max(2000)).max(100);

/** A control job's result: the control record, or why the RoI is skipped. */
export const ControlResult = z.union([
  z.object({ control: z.record(z.string(), z.unknown()), notes: roiNotes, ...computedBy }).strict(),
  z.object({ skipped: z.string(), ...computedBy }).strict(),
]);
export type ControlResult = z.infer<typeof ControlResult>;

/** A cell job's result: the files of the cell's folder (map.npy as base64, attribution.json's object, cell.json's record). */
export const CellResult = z
  .object({
    npy: z.string().max(512 * 1024 * 1024),
    meta: z.record(z.string(), z.unknown()),
    record: z.object({ format: z.literal("segcause.evalcell/1"), key: sha }).passthrough(),
    notes: roiNotes,
    ...computedBy,
  })
  .strict();
export type CellResult = z.infer<typeof CellResult>;

/**
 * A shard's result: its samples (unit -> outcome by draw number), the checkpoint key they were computed
 * under, the job it answers (its id: the payload's hash, so the run's settings), and what computed it.
 */
export const ShardResult = z
  .object({
    job: z.string().regex(/^shard-[0-9a-f]{40}$/),
    ...computedBy,
    key: sha,
    samples: z.record(z.string().regex(/^\d+$/), z.array(z.number().nullable())),
  })
  .strict();
export type ShardResult = z.infer<typeof ShardResult>;

/** How a refusal (the method cannot take this input) is told apart from a failure in a job's failedReason. */
export const REFUSED = "refused: ";
/** How a rejected job (not one of segcause's, or malformed) is named in its failedReason. */
export const REJECTED = "rejected: ";

/** The first problem of a failed check, as one line. */
export function firstIssue(e: z.ZodError): string {
  const i = e.issues[0];
  return `${i.path.join(".") || "(root)"}: ${i.message}`;
}
