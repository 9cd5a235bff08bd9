import { describe, expect, it } from "vitest";
import { STREAM } from "../src/util/streams.js";

describe("the random-stream registry", () => {
  it("gives every named purpose its own stream (KernelSHAP's coalition + 1 included)", () => {
    const used = [...Object.values(STREAM), STREAM.coalition + 1];
    expect(new Set(used).size).toBe(used.length);
  });

  it("keeps the values every map, RoI and published interval was drawn with", () => {
    expect(STREAM).toEqual({
      tieBreak: 0x7e51,
      randomOrder: 0x7e52,
      fillDraws: 0x7e53,
      noise: 0x7e54,
      roi: 0x7e55,
      bootstrap: 0x5eedb007,
      coalition: 0x5a3c,
      rise: 0x415e,
      smoothGradNoise: 0x5600,
      patchTile: 0x7a11,
      donorPick: 7,
      splitShuffle: 11,
      volumeBank: 0x766f6c,
    });
  });
});
