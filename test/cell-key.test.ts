import { describe, expect, it } from "vitest";
import { keyedAsPublished, protocolKey, recordedProtocol, recordedSetting } from "../src/evaluate/cell-key.js";
import { PROTOCOL_DEFAULTS, type Protocol } from "../src/evaluate/protocol.js";

const published: Protocol = { ...PROTOCOL_DEFAULTS, rankUnits: { kind: "pixel" }, topArea: [], controls: ["random"] };

describe("cell keys' compatibility rules", () => {
  it("a later protocol setting enters the key only when it differs from the behaviour before it", () => {
    expect(keyedAsPublished(published)).toBe(true);
    expect(Object.keys(protocolKey(published, 3))).toEqual([
      "steps",
      "fills",
      "patchDraws",
      "blurSigma",
      "topk",
      "radius",
      "minRange",
      "stability",
      "noiseSigma",
      "outcome",
      "reference",
      "seed",
    ]);
    expect(keyedAsPublished({ ...published, controls: ["random", "distance"] })).toBe(false);
    expect(protocolKey({ ...published, topArea: [0.1] }, 3)).toMatchObject({ topArea: [0.1] });
    expect(protocolKey(PROTOCOL_DEFAULTS, 3)).toMatchObject({
      rankUnits: "block:16",
      topArea: [0.01, 0.05, 0.1, 0.2],
      controls: ["random", "distance"],
    });
  });

  it("a run.json that lacks a later setting ran with the behaviour before it", () => {
    const recorded = recordedProtocol(PROTOCOL_DEFAULTS, 0);
    expect(recorded).toMatchObject({ rankUnits: "block:16", seed: 0 });
    const { rankUnits, topArea, controls, ...old } = recordedProtocol(published, 0);
    expect([rankUnits, topArea, controls]).toEqual(["pixel", [], ["random"]]);
    expect(recordedSetting(old, "rankUnits")).toBe("pixel");
    expect(recordedSetting(old, "topArea")).toEqual([]);
    expect(recordedSetting(old, "controls")).toEqual(["random"]);
    expect(recordedSetting(recorded, "rankUnits")).toBe("block:16");
    expect(recordedSetting(old, "steps")).toBe(PROTOCOL_DEFAULTS.steps);
  });
});
