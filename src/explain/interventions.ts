/**
 * Interventions: how a unit's content is replaced. Each writes into one model input (CHW, already
 * holding the unperturbed image) given a draw number; deterministic fills have one draw.
 */
import { fail } from "../errors.js";
import type { PatchBank } from "../data/patchbank.js";
import type { Model } from "../model/model.js";
import type { Block } from "./units.js";

export interface Intervention {
  readonly name: string;
  /** number of distinct draws (1 for deterministic replacements) */
  readonly draws: number;
  apply(dst: Float32Array, unit: Block, draw: number): void;
  describe(): Record<string, unknown>;
}

interface InputGeometry {
  channels: number;
  height: number;
  width: number;
}

/** Natural patches from a PatchBank, pasted at the block, position-agnostic (PdCR). */
export class PatchIntervention implements Intervention {
  readonly name = "natural-patches";
  private readonly patches: Float32Array;
  private readonly geom: InputGeometry;

  constructor(
    private readonly bank: PatchBank,
    model: Model,
    blockSize: number,
  ) {
    if (bank.patchSize !== blockSize) {
      fail(
        `patch bank holds ${bank.patchSize}x${bank.patchSize} patches but the block size is ${blockSize}`,
        `build a bank with --patch-size ${blockSize}, or use --block ${bank.patchSize}`,
      );
    }
    this.geom = { channels: model.channels, height: model.height, width: model.width };
    this.patches = bank.toInputSpace(model.channels as 1 | 3, (c) => model.affine(c));
  }

  get draws(): number {
    return this.bank.count;
  }

  apply(dst: Float32Array, u: Block, draw: number): void {
    const P = this.bank.patchSize;
    const { channels, height, width } = this.geom;
    const src = draw * channels * P * P;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < u.height; y++) {
        const s = src + c * P * P + y * P;
        dst.set(this.patches.subarray(s, s + u.width), c * height * width + (u.row + y) * width + u.col);
      }
    }
  }

  describe(): Record<string, unknown> {
    return { name: this.name, bankSha256: this.bank.sha256, bankPatches: this.bank.count, patchSize: this.bank.patchSize, bankSeed: this.bank.header.seed, bankResizedTo: this.bank.header.resizedTo };
  }
}

/** A constant pixel value (0 = black: the paper's "zero" ablation), converted to input space. */
export class ConstantIntervention implements Intervention {
  readonly name = "constant";
  readonly draws = 1;
  private readonly values: number[];
  private readonly geom: InputGeometry;

  constructor(
    model: Model,
    private readonly pixel = 0,
  ) {
    this.geom = { channels: model.channels, height: model.height, width: model.width };
    this.values = Array.from({ length: model.channels }, (_, c) => {
      const [a, b] = model.affine(c);
      return pixel * a + b;
    });
  }

  apply(dst: Float32Array, u: Block): void {
    const { channels, height, width } = this.geom;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < u.height; y++) {
        const o = c * height * width + (u.row + y) * width + u.col;
        dst.fill(this.values[c], o, o + u.width);
      }
    }
  }

  describe(): Record<string, unknown> {
    return { name: this.name, pixel: this.pixel };
  }
}
