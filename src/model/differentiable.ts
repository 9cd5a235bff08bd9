/**
 * What the gradient layer needs of a model, whatever the input's spatial rank: both Model (2D,
 * [N, C, H, W]) and VolumeModel (3D, [N, 1, D, H, W]) satisfy it, so the gradient graph, its
 * session and the methods on it are one code path with 2D or 3D dims.
 */

import type { ModelProto } from "onnx-buf";
import type { Device } from "./device.js";

/** How the model's output becomes class probabilities: as it is, a sigmoid per channel, or a softmax across channels. */
export type ProbabilityActivation = "none" | "sigmoid" | "softmax";

export interface Differentiable {
  readonly path: string;
  readonly inputName: string;
  readonly outputName: string;
  /** one input without the batch axis: [C, ...spatial] */
  readonly inputDims: number[];
  /** one output without the batch axis, as the graph gives it ([C, ...spatial]; a 2D model's rank-3 output is [H, W]) */
  readonly outputDims: number[];
  /** output channels and the card's class channel */
  readonly outputChannels: number;
  readonly classChannel: number;
  readonly activation: ProbabilityActivation;
  /** intra-op threads of a gradient session: every core the model's own sessions use */
  readonly gradientThreads: number;
  /** execution provider of the model's sessions, used by its gradient sessions too */
  readonly device: Device;
  /** a fresh parse of the graph as run */
  proto(): ModelProto;
}
