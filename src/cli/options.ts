/** Parsing helpers shared by the commands: every bad flag value is a one-line SegcauseError. */
import { fail } from "../errors.js";
import type { MethodOption } from "../explain/methods.js";
import type { CardOverrides } from "../model/card.js";
import { decimal, decimalInteger } from "../util/decimal.js";

export function num(name: string) {
  return (v: string): number => decimal(v) ?? fail(`--${name} must be a decimal number, got '${v}'`);
}

export function int(name: string) {
  return (v: string): number => decimalInteger(v) ?? fail(`--${name} must be a whole number written in digits, got '${v}'`);
}

/** An integer >= min (1 unless told): counts, sizes and batch sizes. */
export function intAtLeast(name: string, min = 1) {
  return (v: string): number => {
    const n = int(name)(v);
    if (n < min) fail(`--${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

/** The largest seed: the random generators mix 32-bit seeds (a larger one would wrap onto a smaller). */
export const MAX_SEED = 2 ** 32 - 1;

/** A random seed (`--seed` of every command): an integer in 0..2^32-1. */
export function seed(name = "seed") {
  return (v: string): number => {
    const n = decimalInteger(v);
    if (n === undefined || n < 0 || n > MAX_SEED) fail(`--${name} must be an integer in 0..${MAX_SEED}, got '${v}'`, `e.g. --${name} 0`);
    return n;
  };
}

/** A number >= min (and <= max when given): thresholds, radii, sigmas. */
export function numIn(name: string, min: number, max = Infinity) {
  return (v: string): number => {
    const n = num(name)(v);
    if (n < min || n > max) fail(`--${name} must be ${max === Infinity ? `>= ${min}` : `in ${min}..${max}`}, got '${v}'`);
    return n;
  };
}

/** A number > 0 (a range that divides). */
export function positive(name: string) {
  return (v: string): number => {
    const n = num(name)(v);
    if (!(n > 0)) fail(`--${name} must be > 0, got '${v}'`);
    return n;
  };
}

/** An image size "H,W" in pixels: two positive integers. */
export function sizeHW(name: string) {
  return (v: string): number[] => {
    const parts = v.split(",").map((s) => s.trim());
    const n = parts.map(decimalInteger);
    if (parts.length !== 2 || n.some((x) => x === undefined || x < 1))
      fail(`--${name} must be two positive integers H,W, got '${v}'`, `e.g. --${name} 256,256`);
    return n as number[];
  };
}

/** A positive integer, or "auto" (chosen by a short probe). */
export function intOrAuto(name: string) {
  return (v: string): number | "auto" => {
    if (v === "auto") return "auto";
    const n = int(name)(v);
    if (n < 1) fail(`--${name} must be >= 1 or auto, got '${v}'`);
    return n;
  };
}

/** The number in a --threads/--workers/--batch-size value, undefined for "auto" or absent. */
export function fixedOrUndefined(v: number | "auto" | undefined): number | undefined {
  return v === "auto" ? undefined : v;
}

export function numList(name: string) {
  return (v: string): number[] => v.split(",").map((s) => num(name)(s));
}

/** The parser of one method option's value (a flag of explain, or `--set method.option=value` of evaluate). */
export function methodOptionParser(o: MethodOption, label: string): (v: string) => unknown {
  if (o.type === "int") return int(label);
  if (o.type === "number") return num(label);
  if (o.type === "numbers") return numList(label);
  return o.choices ? oneOf(label, o.choices) : (v: string) => v;
}

export function oneOf<T extends string>(name: string, allowed: readonly T[]) {
  return (v: string): T => {
    if (!allowed.includes(v as T)) fail(`--${name} must be one of ${allowed.join(", ")}, got '${v}'`);
    return v as T;
  };
}

/** Model-card flags shared by every command that loads a model (the size comes as one flag). */
export interface CardFlags extends Omit<CardOverrides, "height" | "width"> {
  card?: string;
  inputSize?: number[];
  threads?: number | "auto";
}

export function cardOverrides(f: CardFlags): CardOverrides {
  // Pick the card fields explicitly: `f` holds every option of the command.
  return {
    height: f.inputSize?.[0],
    width: f.inputSize?.[1],
    channels: f.channels,
    scale: f.scale,
    mean: f.mean,
    std: f.std,
    resize: f.resize,
    layout: f.layout,
    outputLayout: f.outputLayout,
    outputKind: f.outputKind,
    channel: f.channel,
    threshold: f.threshold,
  };
}

import type { Command } from "commander";
import { checkDevice, DEVICES } from "../model/device.js";

/** The option keys addCardFlags adds (commands that also take method options must tell them apart). */
export const CARD_FLAG_KEYS = [
  "card",
  "inputSize",
  "channels",
  "layout",
  "outputLayout",
  "scale",
  "mean",
  "std",
  "resize",
  "outputKind",
  "channel",
  "threshold",
  "threads",
] as const;

export function addCardFlags(cmd: Command): Command {
  return cmd
    .option("--card <file>", "model card JSON (default: <model>.json next to the model, when present)")
    .option("--input-size <h,w>", "model input height,width", sizeHW("input-size"))
    .option("--channels <rgb|gray>", "input channels", oneOf("channels", ["rgb", "gray"] as const))
    .option("--scale <n>", "pixel values are divided by this (255 → [0,1])", num("scale"))
    .option("--mean <m>", "per-channel mean after scaling, e.g. 0.485,0.456,0.406", numList("mean"))
    .option("--std <s>", "per-channel std after scaling", numList("std"))
    .option(
      "--resize <filter>",
      "resize filter: nearest, bilinear, bicubic, lanczos",
      oneOf("resize", ["nearest", "bilinear", "bicubic", "lanczos"] as const),
    )
    .option(
      "--layout <nchw|nhwc>",
      "input axis order (default: read from the graph; nhwc for [N, H, W, 1|3])",
      oneOf("layout", ["nchw", "nhwc"] as const),
    )
    .option(
      "--output-layout <nchw|nhwc>",
      "output axis order (default: read from its shape, else the input's)",
      oneOf("output-layout", ["nchw", "nhwc"] as const),
    )
    .option(
      "--output-kind <kind>",
      "probabilities (thresholded as exported) or logits (sigmoid/softmax first)",
      oneOf("output-kind", ["probabilities", "logits"] as const),
    )
    .option("--channel <n>", "output class channel", int("channel"))
    .option("--threshold <t>", "binarisation threshold on the class probability", num("threshold"))
    .option(
      "--threads <n|auto>",
      "ONNX Runtime intra-op threads per session (default auto: probed where the command supports it, else 2)",
      intOrAuto("threads"),
    );
}

/** --device, for the commands that run a model (explain, demo, components). */
export function addDeviceFlag(cmd: Command): Command {
  return cmd.option(
    "--device <cpu|cuda>",
    "where ONNX Runtime runs the model: cpu, or cuda (an NVIDIA GPU; onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12, see docs/commands.md#gpu-execution)",
    // checked as it is parsed: a GPU that cannot work stops the command before it does anything
    (v: string) => {
      const device = oneOf("device", DEVICES)(v);
      checkDevice(device);
      return device;
    },
    "cpu",
  );
}
