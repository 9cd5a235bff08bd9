/** `info` lists the card fields a card leaves out, with the values segcause uses for them. */
import { beforeAll, describe, expect, it } from "vitest";
import { segcause } from "./helpers/cli.js";
import { regionMeanModel, SIZE, tmp, writeModel } from "./helpers/tiny.js";

let short: string, full: string;
beforeAll(() => {
  const dir = tmp();
  const bytes = regionMeanModel([{ row: 0, col: 16, height: 16, width: 16, weight: 50 }], -40);
  // only what the schema requires
  short = writeModel(dir, "short.onnx", bytes, { input: { height: SIZE, width: SIZE, channels: "rgb" }, output: { kind: "probabilities" } });
  full = writeModel(dir, "full.onnx", bytes, {
    input: { layout: "nchw", height: SIZE, width: SIZE, channels: "rgb", scale: 255, mean: [0], std: [1], resize: "bilinear" },
    output: { name: "mask", layout: "nchw", kind: "probabilities", channel: 0, threshold: 0.5 },
  });
});

describe("info: card fields that took defaults", () => {
  it("a card with only the required fields: every other field, its value and where it comes from", () => {
    const r = segcause("info", "--model", short);
    expect(r.code, r.stderr).toBe(0);
    const listed = r.stdout.split("card fields left out of the card (values used):\n")[1];
    expect(listed.split("\n").filter((l) => l.startsWith("    - "))).toEqual([
      "    - input.layout = nchw (read from the graph's input shape)",
      "    - input.scale = 255 (default)",
      "    - input.mean = [0, 0, 0] (default)",
      "    - input.std = [1, 1, 1] (default)",
      "    - input.resize = bilinear (default)",
      "    - output.name = mask (the graph's first output)",
      "    - output.layout = nchw (read from the output's shape)",
      "    - output.channel = 0 (default)",
      "    - output.threshold = 0.5 (default)",
    ]);
    // activation applies to logits only: a probabilities card has none to default
    expect(r.stdout).not.toMatch(/output\.activation/);
    expect(r.stdout).toMatch(/nothing assumed beyond the card's defaults \(below\)/);
  });

  it("a field a flag sets is not defaulted; --json lists the same fields", () => {
    const r = segcause("info", "--model", short, "--threshold", "0.3", "--scale", "1", "--json");
    expect(r.code, r.stderr).toBe(0);
    const fields = (JSON.parse(r.stdout).defaults as { field: string; value: unknown; from: string }[]).map((d) => d.field);
    expect(fields).toEqual(["input.layout", "input.mean", "input.std", "input.resize", "output.name", "output.layout", "output.channel"]);
  });

  it("a card that states every field lists none", () => {
    const r = segcause("info", "--model", full);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/left out of the card/);
    expect(r.stdout).toMatch(/nothing assumed: the card gives every setting/);
  });
});
