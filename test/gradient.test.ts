/**
 * Gradient graphs: every backward rule against central finite differences on a tiny model, the guided and
 * DeepLIFT rules on cases with known answers, every shipped zoo model, and a PyTorch autograd reference.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { SegcauseError } from "../src/errors.js";
import { type AttrValue, floatTensor, GraphBuilder } from "../src/onnx/builder.js";
import { buildGradientModel, type GradientGraphOptions } from "../src/onnx/gradient/index.js";
import { parseModel } from "../src/onnx/model-file.js";
import { inferStatic } from "../src/onnx/shapes.js";
import { exposeTensors, tensorNames } from "../src/onnx/surgery.js";

const ROOT = join(import.meta.dirname, "..");
// Severity 3: the tiny models declare their output shape loosely, which ORT warns about.
const SO: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: "extended", logSeverityLevel: 3 };

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return (s - 1) / 2147483646;
  };
}

/** Uniform values in [lo, hi] whose magnitude stays at least `gap` away from 0 (no Relu kinks). */
function values(n: number, seed: number, lo = -1, hi = 1, gap = 0): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => {
    let v = lo + (hi - lo) * r();
    if (gap > 0 && Math.abs(v) < gap) v = v < 0 ? v - gap : v + gap;
    return v;
  });
}

const prod = (d: number[]): number => d.reduce((a, b) => a * b, 1);

async function run(
  bytes: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const s = await ort.InferenceSession.create(bytes, { ...SO, ...options });
  return s.run(feeds);
}

interface Check {
  grad: Float32Array;
  fd: Float64Array;
}

/**
 * The gradient of Σ seed·y with respect to x ([1, ...dims]) from the gradient graph, and by central
 * differences (every coordinate, all perturbed inputs in one batch of the forward model).
 */
async function gradientAndFd(bytes: Uint8Array, dims: number[], x: Float32Array, opts: GradientGraphOptions = {}, h = 1e-3): Promise<Check> {
  const y0 = (await run(bytes, { x: new ort.Tensor("float32", x, dims) })).y as ort.Tensor;
  const seed = values(y0.data.length, 99, -1, 1);
  const gm = buildGradientModel(parseModel(bytes), opts);
  const res = await run(gm.bytes, { x: new ort.Tensor("float32", x, dims), [gm.seedInput]: new ort.Tensor("float32", seed, y0.dims) });
  const grad = res[gm.gradients.x].data as Float32Array;
  const n = x.length;
  const batch = new Float32Array(2 * n * n);
  for (let i = 0; i < n; i++) {
    batch.set(x, 2 * i * n);
    batch.set(x, (2 * i + 1) * n);
    batch[2 * i * n + i] += h;
    batch[(2 * i + 1) * n + i] -= h;
  }
  const ys = (await run(bytes, { x: new ort.Tensor("float32", batch, [2 * n, ...dims.slice(1)]) })).y.data as Float32Array;
  const m = seed.length;
  const fd = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let plus = 0;
    let minus = 0;
    for (let k = 0; k < m; k++) {
      plus += seed[k] * ys[2 * i * m + k];
      minus += seed[k] * ys[(2 * i + 1) * m + k];
    }
    fd[i] = (plus - minus) / (2 * h);
  }
  return { grad, fd };
}

function expectClose(c: Check, tol = 2e-3): void {
  const scale = Math.max(1, ...Array.from(c.fd, Math.abs));
  let worst = 0;
  for (let i = 0; i < c.fd.length; i++) worst = Math.max(worst, Math.abs(c.grad[i] - c.fd[i]));
  expect(worst / scale).toBeLessThan(tol);
  // and the gradient is not trivially zero
  expect(Math.max(...Array.from(c.grad, Math.abs))).toBeGreaterThan(1e-3);
}

/** A one-input model y = f(x) built by `body`, with x of shape [N, ...rest]. */
function tiny(rest: number[], body: (g: GraphBuilder, x: string) => string, outDims: (number | string)[] = [], opset = 17): Uint8Array {
  const g = new GraphBuilder("tiny");
  const x = g.input("x", ["N", ...rest]);
  const y = body(g, x);
  g.node("Identity", [y], {}, ["y"], "/out/Identity");
  g.output("y", outDims.length ? outDims : ["N"]);
  return g.toBytes(opset);
}

function weights(g: GraphBuilder, dims: number[], seed: number): string {
  return g.constant(dims, values(prod(dims), seed, -1, 1));
}

async function fdCase(
  rest: number[],
  body: (g: GraphBuilder, x: string) => string,
  opts: { lo?: number; hi?: number; gap?: number; h?: number; tol?: number; opset?: number } = {},
): Promise<void> {
  const bytes = tiny(rest, body, [], opts.opset);
  const x = values(prod(rest), 7, opts.lo ?? -1, opts.hi ?? 1, opts.gap ?? 0);
  expectClose(await gradientAndFd(bytes, [1, ...rest], x, {}, opts.h ?? 1e-3), opts.tol);
}

describe("gradient rules match finite differences", () => {
  const unary: [string, Record<string, AttrValue>, { lo?: number; hi?: number; gap?: number; opset?: number }][] = [
    ["Relu", {}, { gap: 0.05 }],
    ["LeakyRelu", { alpha: 0.2 }, { gap: 0.05 }],
    ["Sigmoid", {}, {}],
    ["Tanh", {}, {}],
    ["Erf", {}, {}],
    ["Sqrt", {}, { lo: 0.5, hi: 2 }],
    ["Exp", {}, {}],
    ["Log", {}, { lo: 0.5, hi: 2 }],
    ["Abs", {}, { gap: 0.05 }],
    ["Neg", {}, {}],
    ["Softplus", {}, {}],
    ["Reciprocal", {}, { lo: 0.5, hi: 2 }],
    ["Elu", { alpha: 0.7 }, { gap: 0.05 }],
    ["HardSigmoid", { alpha: 0.3, beta: 0.4 }, { lo: -2, hi: 2, gap: 0.05 }],
    ["HardSwish", {}, { lo: -5, hi: 5 }],
    ["Identity", {}, {}],
    ["Mish", {}, { lo: -3, hi: 3, opset: 18 }],
    ["Selu", {}, { gap: 0.05 }],
    ["Selu", { alpha: 1.2, gamma: 0.8 }, { gap: 0.05 }],
    ["Celu", { alpha: 0.6 }, { lo: -3, hi: 3 }],
    ["Softsign", {}, { lo: -3, hi: 3 }],
    ["ThresholdedRelu", { alpha: 0.5 }, { gap: 0.05 }], // no 1.5x within 0.05 of the threshold
    ["Sin", {}, { lo: -3, hi: 3 }],
    ["Cos", {}, { lo: -3, hi: 3 }],
  ];
  it.each(unary)("%s", async (op, attrs, range) => {
    await fdCase([2, 3, 3], (g, x) => g.node(op, [g.node("Mul", [x, g.constant([1], [1.5])])], attrs), range);
  });

  it("Floor, Ceil, Round, Sign pass no gradient beside a differentiable path", async () => {
    // 2.7x stays >= 0.06 from every integer and half-integer for these inputs: no jump within h.
    await fdCase(
      [2, 3],
      (g, x) => {
        const a = g.node("Mul", [x, g.constant([], [2.7])]);
        return g.node("Sum", [g.node("Floor", [a]), g.node("Ceil", [a]), g.node("Round", [a]), g.node("Sign", [x]), g.node("Tanh", [x])]);
      },
      { gap: 0.05 },
    );
  });

  it("Pow with a constant (float or integer) exponent, Clip, Cast float->float", async () => {
    await fdCase([2, 3], (g, x) => g.node("Pow", [x, g.constant([], [2.5])]), { lo: 0.5, hi: 2 });
    await fdCase([2, 3], (g, x) => g.node("Pow", [x, g.constantInt64([3])]));
    await fdCase([2, 3], (g, x) => g.node("Clip", [x, g.constant([], [-0.5]), g.constant([], [0.5])]), { gap: 0.02 });
    await fdCase([2, 3], (g, x) => g.node("Cast", [g.node("Sigmoid", [x])], { to: 1 }));
  });

  it("Gelu (exact and tanh approximation, opset 20)", async () => {
    await fdCase([2, 4], (g, x) => g.node("Gelu", [x]), { opset: 20, lo: -3, hi: 3 });
    await fdCase([2, 4], (g, x) => g.node("Gelu", [x], { approximate: "tanh" }), { opset: 20, lo: -3, hi: 3 });
  });

  it("Conv: groups, dilations, strides, asymmetric pads, odd sizes (output_padding)", async () => {
    await fdCase([4, 7, 6], (g, x) =>
      g.node("Conv", [x, weights(g, [6, 2, 3, 2], 1), g.constant([6], [0.1, 0.2, 0.3, -0.1, -0.2, 0])], {
        group: 2,
        strides: [2, 3],
        dilations: [2, 1],
        pads: [1, 0, 2, 1],
        kernel_shape: [3, 2],
      }),
    );
  });

  it("Conv with stride 1 (gradient as a flipped-kernel Conv): groups, dilations, asymmetric and oversized pads", async () => {
    await fdCase([4, 6, 7], (g, x) =>
      g.node("Conv", [x, weights(g, [6, 2, 3, 2], 8)], { group: 2, dilations: [2, 1], pads: [2, 0, 1, 1], kernel_shape: [3, 2] }),
    );
    await fdCase([2, 4, 4], (g, x) => g.node("Conv", [x, weights(g, [3, 2, 2, 2], 9)], { pads: [3, 1, 0, 2], kernel_shape: [2, 2] }));
  });

  it("Conv with auto_pad SAME_UPPER and SAME_LOWER", async () => {
    for (const autoPad of ["SAME_UPPER", "SAME_LOWER"]) {
      await fdCase([2, 5, 6], (g, x) =>
        g.node("Conv", [x, weights(g, [3, 2, 3, 3], 2)], { strides: [2, 2], auto_pad: autoPad, kernel_shape: [3, 3] }),
      );
    }
  });

  it("ConvTranspose (stride 2, pads, output_padding, groups)", async () => {
    await fdCase([4, 3, 4], (g, x) =>
      g.node("ConvTranspose", [x, weights(g, [4, 1, 3, 3], 3)], {
        strides: [2, 2],
        pads: [1, 0, 1, 1],
        output_padding: [1, 0],
        group: 2,
        kernel_shape: [3, 3],
      }),
    );
  });

  it("MaxPool: 2x2 stride 2, overlapping 3x3 stride 2 windows with pads, and its own Indices output", async () => {
    await fdCase([2, 4, 6], (g, x) => g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] }));
    await fdCase([2, 5, 5], (g, x) => g.node("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2] }, ["pooled", "indices"]));
    await fdCase([2, 5, 5], (g, x) => g.node("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
  });

  it("AveragePool (count_include_pad 0 and 1, ceil_mode), GlobalAveragePool", async () => {
    await fdCase([2, 5, 6], (g, x) => g.node("AveragePool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
    await fdCase([2, 5, 6], (g, x) =>
      g.node("AveragePool", [x], { kernel_shape: [3, 2], strides: [2, 2], pads: [1, 0, 1, 1], count_include_pad: 1 }),
    );
    await fdCase([2, 6, 5], (g, x) => g.node("AveragePool", [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }));
    await fdCase([3, 4, 5], (g, x) => g.node("GlobalAveragePool", [x]));
  });

  const resizes: [string, Record<string, AttrValue>, number[]][] = [
    ["linear half_pixel x2", { mode: "linear", coordinate_transformation_mode: "half_pixel" }, [1, 1, 2, 2]],
    ["linear align_corners x2", { mode: "linear", coordinate_transformation_mode: "align_corners" }, [1, 1, 2, 2]],
    ["linear pytorch_half_pixel x0.5", { mode: "linear", coordinate_transformation_mode: "pytorch_half_pixel" }, [1, 1, 0.5, 0.5]],
    ["linear asymmetric x1.5", { mode: "linear", coordinate_transformation_mode: "asymmetric" }, [1, 1, 1.5, 1.5]],
    ["nearest asymmetric floor x2", { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }, [1, 1, 2, 2]],
    ["nearest half_pixel round_prefer_floor x3", { mode: "nearest", coordinate_transformation_mode: "half_pixel" }, [1, 1, 3, 3]],
    ["cubic half_pixel x2", { mode: "cubic", coordinate_transformation_mode: "half_pixel" }, [1, 1, 2, 2]],
    [
      "cubic exclude_outside x2",
      { mode: "cubic", coordinate_transformation_mode: "half_pixel", exclude_outside: 1, cubic_coeff_a: -0.5 },
      [1, 1, 2, 2],
    ],
  ];
  it.each(resizes)("Resize %s", async (_name, attrs, scales) => {
    await fdCase([2, 4, 6], (g, x) => g.node("Resize", [x, "", g.constant([4], scales)], attrs));
  });

  it("Resize to sizes computed from Shape (as exported by F.interpolate(size=...))", async () => {
    await fdCase([2, 4, 6], (g, x) => {
      const shape = g.node("Shape", [x]);
      const nc = g.node("Slice", [shape, g.constantInt64([0]), g.constantInt64([2]), g.constantInt64([0])]);
      const sizes = g.node("Concat", [nc, g.constantInt64([7, 9])], { axis: 0 });
      return g.node("Resize", [x, "", "", sizes], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
    });
  });

  it("Concat, Split, Slice, Pad (incl. negative pads)", async () => {
    await fdCase([2, 3, 4], (g, x) => g.node("Concat", [g.node("Sigmoid", [x]), x, g.node("Mul", [x, x])], { axis: 1 }));
    await fdCase([4, 3], (g, x) => {
      const [a, b] = ["a", "b"];
      g.node("Split", [x, g.constantInt64([1, 3])], { axis: 1 }, [a, b]);
      return g.node("Mul", [g.node("ReduceSum", [b, g.constantInt64([1])]), a]);
    });
    await fdCase([4, 5], (g, x) => g.node("Slice", [x, g.constantInt64([1, -4]), g.constantInt64([100, -1]), g.constantInt64([1, 2])]));
    await fdCase([3, 4], (g, x) => g.node("Pad", [x, g.constantInt64([0, 1, -1, 0, 2, 1])]));
    // torch's F.pad(x, [1, 2, 0, 1]): its pads reversed pairwise by Reshape → Slice(step -1) → Transpose → Reshape.
    await fdCase([2, 3, 4], (g, x) => {
      const pairs = g.node("Reshape", [g.constantInt64([1, 2, 0, 1, 0, 0, 0, 0]), g.constantInt64([-1, 2])]);
      const reversed = g.node("Slice", [pairs, g.constantInt64([-1]), g.constantInt64([-(2 ** 62)]), g.constantInt64([0]), g.constantInt64([-1])]);
      const pads = g.node("Reshape", [g.node("Transpose", [reversed], { perm: [1, 0] }), g.constantInt64([-1])]);
      return g.node("Mul", [g.node("Pad", [x, pads]), g.node("Pad", [x, pads])]);
    });
  });

  it("Pad in reflect, edge and wrap modes (Conv padding_mode='reflect', F.pad modes), borders wider than one pixel", async () => {
    const sq = (g: GraphBuilder, y: string) => g.node("Mul", [y, g.node("Sigmoid", [y])]);
    await fdCase([2, 5, 6], (g, x) => sq(g, g.node("Pad", [x, g.constantInt64([0, 0, 1, 2, 0, 0, 3, 1])], { mode: "reflect" })));
    await fdCase([2, 5, 6], (g, x) => sq(g, g.node("Pad", [x, g.constantInt64([0, 0, 2, 0, 0, 0, 1, 3])], { mode: "edge" })));
    await fdCase([2, 5, 6], (g, x) => sq(g, g.node("Pad", [x, g.constantInt64([0, 0, 5, 2, 0, 0, 1, 6])], { mode: "wrap" })), { opset: 19 });
  });

  it("Reshape (target from Shape), Flatten, Transpose, Squeeze, Unsqueeze, Expand", async () => {
    await fdCase([2, 3, 4], (g, x) => {
      const n = g.node("Gather", [g.node("Shape", [x]), g.constantInt64([0])], { axis: 0 });
      const shape = g.node("Concat", [n, g.constantInt64([4, 6])], { axis: 0 });
      const r = g.node("Reshape", [x, shape]);
      const t = g.node("Transpose", [r], { perm: [0, 2, 1] });
      const u = g.node("Unsqueeze", [t, g.constantInt64([1])]);
      const s = g.node("Squeeze", [u, g.constantInt64([1])]);
      const e = g.node("Expand", [g.node("ReduceMean", [s], { axes: [2], keepdims: 1 }), g.constantInt64([1, 6, 4])]);
      return g.node("Add", [g.node("Flatten", [g.node("Sigmoid", [s])], { axis: 1 }), g.node("Flatten", [e], { axis: 1 })]);
    });
  });

  it("Add, Sub, Mul, Div with broadcasting between two input-dependent tensors", async () => {
    for (const op of ["Add", "Sub", "Mul", "Div"]) {
      await fdCase([2, 3, 4], (g, x) => {
        const row = g.node("Add", [g.node("ReduceMean", [x], { axes: [2], keepdims: 1 }), g.constant([1], [2])]); // [N,2,1,4], away from 0
        const col = g.node("ReduceSum", [g.node("Sigmoid", [x]), g.constantInt64([1, 2])], { keepdims: 1 }); // [N,1,1,4]
        return g.node(op, [g.node(op, [x, row]), g.node("Add", [col, g.constant([1], [1])])]);
      });
    }
  });

  it("Sum and Where", async () => {
    await fdCase([2, 3], (g, x) => g.node("Sum", [x, g.node("Sigmoid", [x]), g.node("ReduceMean", [x], { axes: [2], keepdims: 1 })]));
    await fdCase([2, 3], (g, x) => g.node("Where", [g.node("Greater", [x, g.constant([], [0])]), g.node("Tanh", [x]), g.node("Mul", [x, x])]), {
      gap: 0.05,
    });
  });

  it("MatMul (both operands input-dependent, broadcast batch), Gemm with transposes", async () => {
    await fdCase([2, 3, 4], (g, x) =>
      g.node("MatMul", [
        g.node("Transpose", [x], { perm: [0, 1, 3, 2] }),
        g.node("Slice", [x, g.constantInt64([0]), g.constantInt64([1]), g.constantInt64([1])]),
      ]),
    );
    await fdCase([3, 4], (g, x) => g.node("MatMul", [x, weights(g, [4, 2], 4)]));
    // Gemm is 2-D: the batch is a row (A) or, transposed, a column (B) of the product.
    await fdCase([6], (g, x) => {
      const a = g.node("Gemm", [x, weights(g, [5, 6], 5), g.constant([5], [1, 2, 3, 4, 5])], { transB: 1, alpha: 0.5, beta: 1.5 }); // [N,5]
      const b = g.node("Gemm", [g.node("Transpose", [a]), weights(g, [5, 3], 6)], { transA: 1 }); // [N,3]
      return g.node("Transpose", [g.node("Gemm", [weights(g, [3, 3], 7), g.node("Sigmoid", [b])], { transB: 1 })]); // [N,3]
    });
  });

  it("Einsum: attention as MONAI's UNETR writes it (blxd,blyd->blxy, Softmax, bhxy,bhyd->bhxd)", async () => {
    await fdCase([2, 3, 4], (g, x) => {
      const q = g.node("Tanh", [g.node("MatMul", [x, weights(g, [4, 4], 101)])]);
      const k = g.node("MatMul", [x, weights(g, [4, 4], 102)]);
      const v = g.node("MatMul", [x, weights(g, [4, 4], 103)]);
      const attn = g.node("Softmax", [g.node("Einsum", [q, k], { equation: "blxd,blyd->blxy" })], { axis: -1 });
      return g.node("Einsum", [attn, v], { equation: "bhxy,bhyd->bhxd" });
    });
  });

  it("Einsum in implicit form (labels appearing once, ASCII order) and with an ellipsis, broadcasting or not", async () => {
    // "azy,yx" -> "axz": the output comes out transposed
    await fdCase([3, 4], (g, x) => g.node("Einsum", [x, weights(g, [4, 2], 104)], { equation: "azy,yx" }));
    await fdCase([2, 3, 4], (g, x) => g.node("Einsum", [g.node("Sigmoid", [x]), x], { equation: "...zy,...xy" }));
    // the first operand's ellipsis [N,1] broadcasts against the second's [N,2]
    await fdCase([2, 3, 4], (g, x) => {
      const a = g.node("ReduceSum", [x, g.constantInt64([1])], { keepdims: 1 }); // [N,1,3,4]
      return g.node("Einsum", [a, g.node("Transpose", [x], { perm: [0, 1, 3, 2] })], { equation: "...ij,...jk->...ik" });
    });
  });

  it("Einsum of one operand: a summed index (ij->i) and a transpose (nij->nji)", async () => {
    await fdCase([4], (g, x) => g.node("Einsum", [g.node("Mul", [x, x])], { equation: "ij->i" }));
    await fdCase([3, 4], (g, x) => g.node("Einsum", [x], { equation: "nij->nji" }));
  });

  it("Einsum: an index summed within the input operand alone, size-1 labels that broadcast, three operands", async () => {
    // i is summed inside x alone: its gradient is expanded back along i
    await fdCase([3, 4], (g, x) => g.node("Einsum", [g.node("Mul", [x, x]), weights(g, [4, 2], 105)], { equation: "bij,jk->bk" }));
    // j: size 4 in x, 1 in the constant (the product spreads over j); then size 1 in the input-dependent operand
    await fdCase([3, 4], (g, x) => g.node("Einsum", [x, weights(g, [1, 2], 106)], { equation: "bij,jk->bik" }));
    await fdCase([3, 4], (g, x) =>
      g.node("Einsum", [g.node("ReduceSum", [x, g.constantInt64([2])], { keepdims: 1 }), weights(g, [4, 2], 107)], { equation: "bij,jk->bik" }),
    );
    await fdCase([2, 3], (g, x) =>
      g.node(
        "Einsum",
        [
          g.node("ReduceSum", [x, g.constantInt64([2])], { keepdims: 0 }),
          g.node("Tanh", [x]),
          g.node("ReduceMean", [x], { axes: [1], keepdims: 0 }),
          weights(g, [3], 108),
        ],
        {
          equation: "bi,bij,bj,j->bj",
        },
      ),
    );
  });

  it("PRelu (per-channel slope), InstanceNormalization", async () => {
    await fdCase([3, 4], (g, x) => g.node("PRelu", [x, g.constant([3, 1], [0.1, 0.5, -0.3])]), { gap: 0.05 });
    await fdCase([2, 3, 4], (g, x) =>
      g.node("InstanceNormalization", [x, g.constant([2], [1.5, -0.5]), g.constant([2], [0.1, 0.2])], { epsilon: 1e-5 }),
    );
  });

  it("Softmax, LayerNormalization, BatchNormalization", async () => {
    await fdCase([3, 5], (g, x) => g.node("Softmax", [g.node("Mul", [x, g.constant([], [2])])], { axis: -1 }));
    await fdCase([3, 5], (g, x) => g.node("Softmax", [x], { axis: 1 }));
    await fdCase([3, 5], (g, x) =>
      g.node("LayerNormalization", [x, g.constant([5], [1, 2, 0.5, -1, 1.5]), g.constant([5], [0, 0.1, 0.2, 0.3, 0.4])], { axis: -1, epsilon: 1e-5 }),
    );
    await fdCase([2, 3, 4], (g, x) => g.node("LayerNormalization", [x, weights(g, [3, 4], 6), weights(g, [3, 4], 7)], { axis: 1, epsilon: 1e-5 }));
    await fdCase([3, 2, 2], (g, x) =>
      g.node(
        "BatchNormalization",
        [x, g.constant([3], [1, 2, -1]), g.constant([3], [0.1, 0, 0]), g.constant([3], [0.5, 0, -1]), g.constant([3], [0.5, 2, 1.5])],
        { epsilon: 1e-5 },
      ),
    );
  });

  it("LogSoftmax (log_softmax outputs), GroupNormalization (opset 18: scale per group; 21: per channel)", async () => {
    await fdCase([3, 5], (g, x) => g.node("LogSoftmax", [g.node("Mul", [x, g.constant([], [2])])], { axis: -1 }));
    await fdCase([3, 5], (g, x) => g.node("LogSoftmax", [x], { axis: 1 }));
    await fdCase(
      [4, 2, 3],
      (g, x) => g.node("GroupNormalization", [x, g.constant([2], [1.5, -0.5]), g.constant([2], [0.1, 0.2])], { num_groups: 2, epsilon: 1e-5 }),
      { opset: 18 },
    );
    await fdCase(
      [4, 2, 3],
      (g, x) =>
        g.node("GroupNormalization", [x, g.constant([4], [1.5, -0.5, 2, 1]), g.constant([4], [0.1, 0.2, 0, -0.1])], { num_groups: 2, epsilon: 1e-5 }),
      { opset: 21 },
    );
  });

  it("ReduceMean, ReduceSum (keepdims 0, axes as attribute and input), Gather on data", async () => {
    await fdCase([3, 4], (g, x) => g.node("ReduceMean", [x], { axes: [1], keepdims: 0 }));
    await fdCase([3, 4], (g, x) => g.node("ReduceSum", [g.node("Mul", [x, x]), g.constantInt64([2])], { keepdims: 0 }));
    await fdCase([3, 4], (g, x) => g.node("Mul", [g.node("Gather", [x, g.constantInt64([2, 0, 2])], { axis: 1 }), g.constant([1], [2])]));
    await fdCase([3, 4], (g, x) => {
      const i = g.constantInt64([1]);
      const scalar = g.node("Squeeze", [i, g.constantInt64([0])]);
      return g.node("Gather", [x, scalar], { axis: 2 });
    });
  });

  it("ReduceMax, ReduceMin (axes attribute with keepdims 0/1, axes input, noop_with_empty_axes), GlobalMaxPool", async () => {
    await fdCase([3, 4], (g, x) => g.node("ReduceMax", [x], { axes: [1], keepdims: 0 }));
    await fdCase([3, 4], (g, x) => g.node("ReduceMin", [x], { axes: [1, -1], keepdims: 1 }));
    await fdCase([3, 4], (g, x) => g.node("ReduceMax", [x, g.constantInt64([-1])], { keepdims: 0 }), { opset: 18 });
    await fdCase([3, 4], (g, x) => g.node("ReduceMin", [g.node("Sigmoid", [x]), g.constantInt64([])], { noop_with_empty_axes: 1 }), { opset: 18 });
    await fdCase([3, 4, 5], (g, x) => g.node("GlobalMaxPool", [x]));
  });

  it("a CBAM block: channel attention from GlobalMaxPool/GlobalAveragePool, spatial attention from ReduceMax/ReduceMean over channels", async () => {
    await fdCase([4, 5, 5], (g, x) => {
      const mlp = (t: string): string =>
        g.node(
          "Conv",
          [g.node("Relu", [g.node("Conv", [t, weights(g, [2, 4, 1, 1], 71)], { kernel_shape: [1, 1] })]), weights(g, [4, 2, 1, 1], 72)],
          { kernel_shape: [1, 1] },
        );
      const channel = g.node("Sigmoid", [g.node("Add", [mlp(g.node("GlobalMaxPool", [x])), mlp(g.node("GlobalAveragePool", [x]))])]);
      const f = g.node("Mul", [x, channel]);
      const pooled = g.node("Concat", [g.node("ReduceMax", [f], { axes: [1], keepdims: 1 }), g.node("ReduceMean", [f], { axes: [1], keepdims: 1 })], {
        axis: 1,
      });
      const spatial = g.node("Sigmoid", [g.node("Conv", [pooled, weights(g, [1, 2, 3, 3], 73)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })]);
      return g.node("Mul", [f, spatial]);
    });
  });

  it("Max, Min: n inputs with broadcasting, constants among them", async () => {
    await fdCase([2, 3, 4], (g, x) =>
      g.node("Max", [x, g.node("ReduceMean", [x], { axes: [2], keepdims: 1 }), g.constant([4], [-0.5, 0.2, 0, 0.5])]),
    );
    await fdCase([2, 3, 4], (g, x) => g.node("Min", [g.node("Tanh", [x]), g.node("ReduceSum", [x, g.constantInt64([1])], { keepdims: 1 })]));
    await fdCase([2, 3], (g, x) => g.node("Max", [g.node("Sigmoid", [x])]));
  });

  it("ReduceL2, ReduceSumSquare (axes attribute and input, keepdims 0, noop_with_empty_axes), F.normalize's export", async () => {
    await fdCase([3, 4], (g, x) => g.node("ReduceL2", [x], { axes: [2], keepdims: 0 }));
    await fdCase([3, 4], (g, x) => g.node("ReduceSumSquare", [x, g.constantInt64([1])], { keepdims: 1 }), { opset: 18 });
    await fdCase([3, 4], (g, x) => g.node("ReduceL2", [x, g.constantInt64([])], { noop_with_empty_axes: 1 }), { opset: 18, gap: 0.05 });
    await fdCase([3, 4], (g, x) => {
      const norm = g.node("Clip", [g.node("ReduceL2", [x], { axes: [1], keepdims: 1 }), g.constant([], [1e-12])]);
      return g.node("Div", [x, g.node("Expand", [norm, g.node("Shape", [x])])]);
    });
  });

  it("ReduceLogSumExp (axes attribute and input, keepdims 0)", async () => {
    await fdCase([3, 4], (g, x) => g.node("ReduceLogSumExp", [g.node("Mul", [x, g.constant([], [3])])], { axes: [1, 2], keepdims: 0 }));
    await fdCase([3, 4], (g, x) => g.node("ReduceLogSumExp", [x, g.constantInt64([-1])], { keepdims: 1 }), { opset: 18 });
  });

  it("MaxUnpool after a MaxPool that outputs its Indices (default output size, and output_shape for odd sizes)", async () => {
    await fdCase([2, 4, 6], (g, x) => {
      g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, ["pooled", "indices"]);
      return g.node("MaxUnpool", [g.node("Tanh", ["pooled"]), "indices"], { kernel_shape: [2, 2], strides: [2, 2] });
    });
    await fdCase([2, 5, 5], (g, x) => {
      g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, ["pooled", "indices"]);
      return g.node("MaxUnpool", [g.node("Mul", ["pooled", "pooled"]), "indices", g.node("Shape", [x])], { kernel_shape: [2, 2], strides: [2, 2] });
    });
  });

  it("DepthToSpace (DCR and CRD), SpaceToDepth", async () => {
    await fdCase([8, 2, 3], (g, x) => g.node("DepthToSpace", [x], { blocksize: 2 }));
    await fdCase([8, 2, 3], (g, x) => g.node("DepthToSpace", [x], { blocksize: 2, mode: "CRD" }));
    await fdCase([2, 4, 6], (g, x) => g.node("SpaceToDepth", [x], { blocksize: 2 }));
  });

  it("Tile", async () => {
    await fdCase([2, 3], (g, x) => g.node("Tile", [g.node("Sigmoid", [x]), g.constantInt64([1, 2, 3])]));
    await fdCase([2, 3], (g, x) => g.node("Tile", [x, g.constantInt64([1, 1, 1])]));
  });

  it("a U-Net-like block: Conv, Relu, MaxPool, Resize, Concat, Sigmoid", async () => {
    await fdCase(
      [2, 6, 6],
      (g, x) => {
        const c1 = g.node("Relu", [
          g.node("Conv", [x, weights(g, [3, 2, 3, 3], 11), g.constant([3], [0.1, -0.1, 0.2])], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }),
        ]);
        const p = g.node("MaxPool", [c1], { kernel_shape: [2, 2], strides: [2, 2] });
        const up = g.node("Resize", [p, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
        const cat = g.node("Concat", [c1, up], { axis: 1 });
        return g.node("Sigmoid", [g.node("Conv", [cat, weights(g, [1, 6, 1, 1], 12)], { kernel_shape: [1, 1] })]);
      },
      { h: 1e-3, tol: 5e-3 },
    );
  });
});

describe("gradient rules on 5D tensors (volume models) match finite differences", () => {
  it("Conv 3D with strides, asymmetric pads and groups", async () => {
    await fdCase([2, 5, 4, 5], (g, x) =>
      g.node("Conv", [x, weights(g, [4, 1, 3, 2, 3], 31), g.constant([4], [0.1, -0.2, 0.05, 0])], {
        kernel_shape: [3, 2, 3],
        strides: [2, 1, 2],
        pads: [1, 0, 1, 0, 1, 1],
        group: 2,
      }),
    );
  });

  it("Conv 3D with stride 1 and pads (the flipped-kernel Conv gradient)", async () => {
    await fdCase([2, 4, 4, 3], (g, x) => g.node("Conv", [x, weights(g, [3, 2, 3, 3, 3], 32)], { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] }));
  });

  it("MaxPool 3D: 2x2x2 stride 2, overlapping 3x3x3 windows with pads", async () => {
    await fdCase([2, 4, 4, 4], (g, x) => g.node("MaxPool", [x], { kernel_shape: [2, 2, 2], strides: [2, 2, 2] }));
    await fdCase([1, 5, 4, 5], (g, x) => g.node("MaxPool", [x], { kernel_shape: [3, 3, 3], strides: [2, 2, 2], pads: [1, 1, 1, 1, 1, 1] }));
  });

  it("Resize trilinear (x2, half_pixel and align_corners) and Concat on the channel axis", async () => {
    for (const coordinate_transformation_mode of ["half_pixel", "align_corners"])
      await fdCase([2, 3, 2, 3], (g, x) => {
        const up = g.node("Resize", [x, "", g.constant([5], [1, 1, 2, 2, 2])], { mode: "linear", coordinate_transformation_mode });
        return g.node("Concat", [up, g.node("Mul", [up, g.constant([1], [-2])])], { axis: 1 });
      });
  });

  it("a 3D U-Net block as the shipped model has it: Conv, Relu, MaxPool, Resize (trilinear), Concat, Constant", async () => {
    await fdCase(
      [1, 4, 6, 4],
      (g, x) => {
        const c1 = g.node("Relu", [
          g.node("Conv", [x, weights(g, [3, 1, 3, 3, 3], 41), g.constant([3], [0.1, -0.1, 0.2])], {
            pads: [1, 1, 1, 1, 1, 1],
            kernel_shape: [3, 3, 3],
          }),
        ]);
        const p = g.node("MaxPool", [c1], { kernel_shape: [2, 2, 2], strides: [2, 2, 2] });
        const scales = g.node("Constant", [], { value: floatTensor("scales", [5], [1, 1, 2, 2, 2]) });
        const up = g.node("Resize", [p, "", scales], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
        const cat = g.node("Concat", [c1, up], { axis: 1 });
        return g.node("Conv", [cat, weights(g, [1, 6, 1, 1, 1], 42)], { kernel_shape: [1, 1, 1] });
      },
      { gap: 0.05, tol: 5e-3 },
    );
  });
});

describe("gradient graph contract", () => {
  it("keeps the dynamic batch: per-sample gradients do not depend on the batch", async () => {
    const bytes = tiny([2, 4, 4], (g, x) =>
      g.node("Sigmoid", [g.node("Conv", [x, weights(g, [1, 2, 3, 3], 21)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })]),
    );
    const gm = buildGradientModel(parseModel(bytes));
    const x = values(3 * 32, 3);
    const seed = values(3 * 16, 4);
    const all = await run(gm.bytes, { x: new ort.Tensor("float32", x, [3, 2, 4, 4]), [gm.seedInput]: new ort.Tensor("float32", seed, [3, 1, 4, 4]) });
    const one = await run(gm.bytes, {
      x: new ort.Tensor("float32", x.slice(32, 64), [1, 2, 4, 4]),
      [gm.seedInput]: new ort.Tensor("float32", seed.slice(16, 32), [1, 1, 4, 4]),
    });
    const a = (all[gm.gradients.x].data as Float32Array).slice(32, 64);
    const b = one[gm.gradients.x].data as Float32Array;
    for (let i = 0; i < 32; i++) expect(a[i]).toBeCloseTo(b[i], 6);
    expect(all[gm.output].dims).toEqual([3, 1, 4, 4]);
  });

  it("returns gradients and activations of intermediate tensors", async () => {
    const g = new GraphBuilder("mid");
    const x = g.input("x", ["N", 3]);
    const h = g.node("Mul", [x, g.constant([3], [1, 2, 3])], {}, ["h"]);
    g.node("Sigmoid", [h], {}, ["y"]);
    g.output("y", ["N", 3]);
    const gm = buildGradientModel(parseModel(g.toBytes()), { wrt: ["x", "h"] });
    expect(gm.activations).toEqual({ h: "h" });
    const xv = Float32Array.from([0.5, -1, 0.25]);
    const res = await run(gm.bytes, {
      x: new ort.Tensor("float32", xv, [1, 3]),
      [gm.seedInput]: new ort.Tensor("float32", Float32Array.from([1, 1, 1]), [1, 3]),
    });
    const hv = res[gm.activations.h].data as Float32Array;
    const gh = res[gm.gradients.h].data as Float32Array;
    const gx = res[gm.gradients.x].data as Float32Array;
    for (let i = 0; i < 3; i++) {
      const s = 1 / (1 + Math.exp(-hv[i]));
      expect(hv[i]).toBeCloseTo(xv[i] * (i + 1), 6);
      expect(gh[i]).toBeCloseTo(s * (1 - s), 6);
      expect(gx[i]).toBeCloseTo(s * (1 - s) * (i + 1), 6);
    }
  });

  it("differentiates a chosen intermediate output; an input the output ignores gets a zero gradient", async () => {
    const g = new GraphBuilder("mid-out");
    const x = g.input("x", ["N", 3]);
    const h = g.node("Mul", [x, x], {}, ["h"]);
    g.node("Sigmoid", [h], {}, ["y"]);
    g.output("y", ["N", 3]);
    const gm = buildGradientModel(parseModel(g.toBytes()), { output: "h" });
    expect(gm.output).toBe("h");
    const xv = Float32Array.from([0.5, -1, 2]);
    const res = await run(gm.bytes, {
      x: new ort.Tensor("float32", xv, [1, 3]),
      [gm.seedInput]: new ort.Tensor("float32", Float32Array.from([1, 2, 3]), [1, 3]),
    });
    expect(Array.from(res[gm.gradients.x].data as Float32Array)).toEqual([1, -4, 12]);

    const c = new GraphBuilder("const");
    c.input("x", ["N", 3]);
    c.node("Sigmoid", [c.constant([1, 3], [1, 2, 3])], {}, ["y"]);
    c.output("y", [1, 3]);
    const cm = buildGradientModel(parseModel(c.toBytes()));
    const cres = await run(cm.bytes, {
      x: new ort.Tensor("float32", xv, [1, 3]),
      [cm.seedInput]: new ort.Tensor("float32", Float32Array.from([1, 1, 1]), [1, 3]),
    });
    expect(Array.from(cres[cm.gradients.x].data as Float32Array)).toEqual([0, 0, 0]);
  });

  it("refuses an op without a rule, naming the op and the node", () => {
    const bytes = tiny([3], (g, x) => g.node("LpNormalization", [x], {}, undefined, "/block/norm/LpNormalization"));
    expect(() => buildGradientModel(parseModel(bytes))).toThrow(SegcauseError);
    expect(() => buildGradientModel(parseModel(bytes))).toThrow(/LpNormalization node '\/block\/norm\/LpNormalization'/);
  });

  it("refuses the gradient of an Einsum with a repeated label in one operand (a diagonal), naming the node", () => {
    const bytes = tiny([3, 3], (g, x) => g.node("Einsum", [x], { equation: "bii->bi" }, undefined, "/attn/Einsum"));
    expect(() => buildGradientModel(parseModel(bytes))).toThrow(/Einsum node '\/attn\/Einsum'.*diagonal/);
  });

  it("ties among maxima (minima) share the gradient evenly", async () => {
    const x = Float32Array.from([1, 3, 3, 2]);
    const reduce = await ruleRun(
      tiny([4], (g, t) => g.node("ReduceMax", [t], { axes: [1], keepdims: 1 })),
      [1, 4],
      x,
      Float32Array.from([1]),
      "gradient",
    );
    expect(Array.from(reduce.grad, (v) => v + 0)).toEqual([0, 0.5, 0.5, 0]);
    const min = await ruleRun(
      tiny([4], (g, t) => g.node("Min", [t, g.constant([4], [1, 3, 0, 2])])),
      [1, 4],
      x,
      Float32Array.from([1, 1, 1, 1]),
      "gradient",
    );
    expect(Array.from(min.grad, (v) => v + 0)).toEqual([0.5, 0.5, 0, 0.5]);
  });

  it("an op whose rule contributes nothing (Floor) leaves a zero gradient", async () => {
    const bytes = tiny([3], (g, x) => g.node("Floor", [g.node("Mul", [x, g.constant([], [3])])]));
    const { grad } = await ruleRun(bytes, [1, 3], Float32Array.from([0.5, -1, 2.2]), Float32Array.from([1, 1, 1]), "gradient");
    expect(Array.from(grad, (v) => v + 0)).toEqual([0, 0, 0]);
  });

  it("an op segcause cannot infer is refused on the path to the output, ignored off it", () => {
    const offPath = tiny([4], (g, x) => {
      g.node("TopK", [x, g.constantInt64([2])], { axis: 1 }, ["top", "topIdx"], "/side/TopK");
      return g.node("Sigmoid", [x]);
    });
    expect(buildGradientModel(parseModel(offPath)).gradients.x).toBeDefined();
    const onPath = tiny([4], (g, x) => {
      const [top] = ["top"];
      g.node("TopK", [x, g.constantInt64([2])], { axis: 1 }, [top, "topIdx"], "/head/TopK");
      return g.node("Sigmoid", [top]);
    });
    expect(() => buildGradientModel(parseModel(onPath))).toThrow(/TopK node '\/head\/TopK'/);
  });

  it("ignores integer shape computations and non-differentiable switches (SegNet-style Equal masks)", async () => {
    await fdCase([1, 4, 4], (g, x) => {
      const p = g.node("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
      const up = g.node("Resize", [p, "", g.constant([4], [1, 1, 2, 2])], {
        mode: "nearest",
        coordinate_transformation_mode: "asymmetric",
        nearest_mode: "floor",
      });
      const mask = g.node("Cast", [g.node("Equal", [x, up])], { to: 1 });
      return g.node("Mul", [
        g.node("Resize", [g.node("Tanh", [p]), "", g.constant([4], [1, 1, 2, 2])], {
          mode: "nearest",
          coordinate_transformation_mode: "asymmetric",
          nearest_mode: "floor",
        }),
        mask,
      ]);
    });
  });

  it("opset 11 models are converted: attribute axes, Softmax over the flattened trailing axes, Dropout's ratio", async () => {
    await fdCase(
      [2, 3],
      (g, x) => {
        const s = g.node("Softmax", [g.node("Mul", [x, g.constant([1], [2])])], { axis: 1 }); // opset 11: over all 6 values
        const u = g.node("Unsqueeze", [g.node("Dropout", [s], { ratio: 0.3 })], { axes: [1] }); // [N,1,2,3]
        const [a, b] = ["split_a", "split_b"];
        g.node("Split", [u], { axis: 3, split: [1, 2] }, [a, b]);
        const r = g.node("ReduceSum", [b], { axes: [3], keepdims: 1 });
        return g.node("Squeeze", [g.node("Mul", [g.node("Mul", [a, r]), g.constant([1], [50])])], { axes: [1, 3] });
      },
      { opset: 11 },
    );
  });

  it("overlapping MaxPool windows in an opset 13 model (the model is raised to opset 16 for their gradient)", async () => {
    await fdCase([2, 5, 5], (g, x) => g.node("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }), { opset: 13 });
  });

  it("refuses models older than opset 11 with the fix", () => {
    const bytes = tiny([3], (g, x) => g.node("Sigmoid", [x]), [], 9);
    expect(() => buildGradientModel(parseModel(bytes))).toThrow(/uses ONNX opset 9; segcause can analyse opset 11 and newer/);
  });

  it("rejects unknown tensors and weights as wrt", () => {
    const bytes = tiny([3], (g, x) => g.node("Mul", [x, g.constant([3], [1, 2, 3], "w")]));
    expect(() => buildGradientModel(parseModel(bytes), { wrt: ["nope"] })).toThrow(/unknown tensor 'nope'/);
    expect(() => buildGradientModel(parseModel(bytes), { wrt: ["w"] })).toThrow(/weight/);
  });
});

/** Runs a gradient model with the given rule; returns the input gradient and the output. */
async function ruleRun(
  bytes: Uint8Array,
  dims: number[],
  x: Float32Array,
  seed: Float32Array,
  rule: "guided" | "deeplift" | "gradient",
  reference?: Float32Array,
) {
  const gm = buildGradientModel(parseModel(bytes), { rule });
  const outDims = [dims[0], ...((await run(bytes, { x: new ort.Tensor("float32", x, dims) })).y as ort.Tensor).dims.slice(1)];
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor("float32", x, dims), [gm.seedInput]: new ort.Tensor("float32", seed, outDims) };
  if (gm.referenceInput) feeds[gm.referenceInput] = new ort.Tensor("float32", reference ?? new Float32Array(x.length), dims);
  const res = await run(gm.bytes, feeds);
  return { grad: res[gm.gradients.x].data as Float32Array, y: res[gm.output].data as Float32Array, gm };
}

describe("guided backpropagation", () => {
  it("Relu passes only positive gradient where its input was positive", async () => {
    const bytes = tiny([4], (g, x) => g.node("Relu", [x]));
    const x = Float32Array.from([1, -1, 2, -2]);
    const seed = Float32Array.from([0.5, 0.5, -0.5, -0.5]);
    const { grad } = await ruleRun(bytes, [1, 4], x, seed, "guided");
    expect(Array.from(grad, (v) => v + 0)).toEqual([0.5, 0, 0, 0]);
    const plain = await ruleRun(bytes, [1, 4], x, seed, "gradient");
    expect(Array.from(plain.grad, (v) => v + 0)).toEqual([0.5, 0, -0.5, 0]);
  });

  it("LeakyRelu passes max(g, 0)·f'(x)", async () => {
    const bytes = tiny([4], (g, x) => g.node("LeakyRelu", [x], { alpha: 0.25 }));
    const { grad } = await ruleRun(bytes, [1, 4], Float32Array.from([1, -1, 2, -2]), Float32Array.from([0.5, 0.5, -0.5, -0.5]), "guided");
    expect(Array.from(grad, (v) => v + 0)).toEqual([0.5, 0.125, 0, 0]);
  });

  it("ThresholdedRelu is gated like Relu; max ops route g as the gradient does", async () => {
    const bytes = tiny([4], (g, x) => g.node("ThresholdedRelu", [x], { alpha: 0.5 }));
    const { grad } = await ruleRun(bytes, [1, 4], Float32Array.from([1, -1, 2, 0.2]), Float32Array.from([0.5, 0.5, -0.5, -0.5]), "guided");
    expect(Array.from(grad, (v) => v + 0)).toEqual([0.5, 0, 0, 0]);
    const maxes = tiny([2, 3], (g, x) => g.node("Max", [g.node("ReduceMax", [x], { axes: [2], keepdims: 1 }), g.node("GlobalMaxPool", [x])]));
    const x = values(6, 3);
    const seed = Float32Array.from([0.5, -1]);
    const guided = await ruleRun(maxes, [1, 2, 3], x, seed, "guided");
    const plain = await ruleRun(maxes, [1, 2, 3], x, seed, "gradient");
    expect(Array.from(guided.grad)).toEqual(Array.from(plain.grad));
    expect(plain.grad.some((v) => v !== 0)).toBe(true);
  });
});

describe("DeepLIFT rescale rule", () => {
  it("gives the exact secant multipliers of a single Relu and Sigmoid layer", async () => {
    const x = Float32Array.from([1.5, -1, 2, 0.5, 0.3]);
    const r = Float32Array.from([-0.5, -2, 2, 1, 0.3]);
    const ones = new Float32Array(5).fill(1);
    const relu = await ruleRun(
      tiny([5], (g, t) => g.node("Relu", [t])),
      [1, 5],
      x,
      ones,
      "deeplift",
      r,
    );
    expect(Array.from(relu.grad)).toEqual([0.75, 0, 1, 1, 1].map((v) => expect.closeTo(v, 6)));
    const sig = await ruleRun(
      tiny([5], (g, t) => g.node("Sigmoid", [t])),
      [1, 5],
      x,
      ones,
      "deeplift",
      r,
    );
    const s = (v: number): number => 1 / (1 + Math.exp(-v));
    x.forEach((xi, i) => {
      const want = xi === r[i] ? s(xi) * (1 - s(xi)) : (s(xi) - s(r[i])) / (xi - r[i]);
      expect(sig.grad[i]).toBeCloseTo(want, 5);
    });
  });

  /** Σ m·(x - x_ref) against Σ seed·(f(x) - f(x_ref)). */
  async function completeness(bytes: Uint8Array, dims: number[], seedValue = 7, reference?: Float32Array): Promise<[number, number]> {
    const x = values(prod(dims), seedValue, -1, 1);
    const r = reference ?? values(prod(dims), seedValue + 1, -0.5, 0.5);
    const yx = (await run(bytes, { x: new ort.Tensor("float32", x, dims) })).y as ort.Tensor;
    const yr = (await run(bytes, { x: new ort.Tensor("float32", r, dims) })).y.data as Float32Array;
    const seed = values(yx.data.length, 5, 0, 1);
    const res = await ruleRun(bytes, dims, x, seed, "deeplift", r);
    let lhs = 0;
    for (let i = 0; i < x.length; i++) lhs += res.grad[i] * (x[i] - r[i]);
    let rhs = 0;
    for (let k = 0; k < seed.length; k++) rhs += seed[k] * ((yx.data as Float32Array)[k] - yr[k]);
    return [lhs, rhs];
  }

  it("sums to delta on networks of Relu, MaxPool, attention-gate products and linear ops", async () => {
    const bytes = tiny([2, 8, 8], (g, x) => {
      const c1 = g.node("Relu", [
        g.node("Conv", [x, weights(g, [4, 2, 3, 3], 31), g.constant([4], [0.1, -0.1, 0.2, 0])], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }),
      ]);
      const p = g.node("MaxPool", [c1], { kernel_shape: [2, 2], strides: [2, 2] });
      const c2 = g.node("Relu", [g.node("Conv", [p, weights(g, [4, 4, 3, 3], 32)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })]);
      const up = g.node("Resize", [c2, "", g.constant([4], [1, 1, 2, 2])], { mode: "linear", coordinate_transformation_mode: "half_pixel" });
      const gate = g.node("Sigmoid", [g.node("Conv", [g.node("Add", [c1, up]), weights(g, [1, 4, 1, 1], 33)], { kernel_shape: [1, 1] })]);
      const gated = g.node("Mul", [c1, gate]);
      const cat = g.node("Concat", [gated, up], { axis: 1 });
      const pooled = g.node("GlobalAveragePool", [cat]);
      const head = g.node("Conv", [cat, weights(g, [1, 8, 1, 1], 34)], { kernel_shape: [1, 1] });
      return g.node("Tanh", [g.node("Add", [head, g.node("ReduceSum", [pooled, g.constantInt64([1])], { keepdims: 1 })])]);
    });
    const [lhs, rhs] = await completeness(bytes, [1, 2, 8, 8]);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });
  it("sums to delta through input-dependent products, quotients and elementwise nonlinearities", async () => {
    const bytes = tiny(
      [2, 4, 4],
      (g, x) => {
        const a = g.node("Tanh", [g.node("Conv", [x, weights(g, [2, 2, 3, 3], 41)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })]);
        const b = g.node("Exp", [g.node("Mul", [x, g.constant([], [0.5])])]);
        const prodAB = g.node("MatMul", [a, g.node("Transpose", [b], { perm: [0, 1, 3, 2] })]); // [N,2,4,4]
        const q = g.node("Div", [prodAB, g.node("Add", [g.node("Sqrt", [g.node("Mul", [b, b])]), g.constant([], [0.5])])]);
        const pooled = g.node("AveragePool", [g.node("Pad", [q, g.constantInt64([0, 0, 1, 1, 0, 0, 1, 1])])], {
          kernel_shape: [3, 3],
          strides: [1, 1],
        });
        const gelu = g.node("Gelu", [g.node("Slice", [pooled, g.constantInt64([1]), g.constantInt64([4]), g.constantInt64([2])])], {
          approximate: "tanh",
        });
        const flat = g.node("Reshape", [gelu, g.constantInt64([0, -1])]);
        return g.node("Log", [g.node("Add", [g.node("Sigmoid", [flat]), g.constant([], [0.5])])]);
      },
      [],
      20,
    );
    const [lhs, rhs] = await completeness(bytes, [1, 2, 4, 4], 3);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });

  it("sums to delta through max ops, norms, Tile and the other elementwise nonlinearities", async () => {
    const bytes = tiny(
      [2, 4, 4],
      (g, x) => {
        const h = g.node("Conv", [x, weights(g, [8, 2, 3, 3], 81)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
        const acts = [
          g.node("Mish", [h]),
          g.node("Selu", [h]),
          g.node("Celu", [h], { alpha: 0.7 }),
          g.node("Softsign", [h]),
          g.node("ThresholdedRelu", [h], { alpha: 0.2 }),
          g.node("Sin", [h]),
          g.node("Cos", [h]),
          g.node("Round", [g.node("Mul", [h, g.constant([], [2])])]),
          g.node("Sign", [h]),
        ];
        const f = g.node("Sum", acts); // [N,8,4,4]
        const gated = g.node("Mul", [
          f,
          g.node("Sigmoid", [g.node("Conv", [g.node("GlobalMaxPool", [f]), weights(g, [8, 8, 1, 1], 82)], { kernel_shape: [1, 1] })]),
        ]);
        const extremes = g.node(
          "Concat",
          [g.node("ReduceMax", [gated, g.constantInt64([1])], { keepdims: 1 }), g.node("ReduceMin", [gated, g.constantInt64([1])], { keepdims: 1 })],
          { axis: 1 },
        );
        const sp = g.node("Mul", [extremes, g.constant([], [0.1])]); // [N,2,4,4], within about ±2
        const rows = g.node("Tile", [g.node("ReduceMin", [sp, g.constantInt64([2])], { keepdims: 1 }), g.constantInt64([1, 1, 4, 1])]);
        // every branch of the Max and the Min wins somewhere, on the input and on the reference
        const mm = g.node("Min", [g.node("Max", [sp, g.node("Mul", [rows, g.constant([], [0.5])]), g.constant([1], [-0.6])]), g.constant([], [1.2])]);
        const norm = g.node("Clip", [g.node("ReduceL2", [mm, g.constantInt64([1])], { keepdims: 1 }), g.constant([], [1e-6])]);
        const unit = g.node("Div", [mm, g.node("Expand", [norm, g.node("Shape", [mm])])]);
        // both terms of about the same size, so that any wrong multiplier shows
        const ss = g.node("Mul", [g.node("ReduceSumSquare", [gated, g.constantInt64([1])], { keepdims: 1 }), g.constant([], [0.002])]);
        return g.node("Add", [g.node("Conv", [unit, weights(g, [1, 2, 1, 1], 83)], { kernel_shape: [1, 1] }), ss]);
      },
      [],
      18,
    );
    const [lhs, rhs] = await completeness(bytes, [1, 2, 4, 4], 9);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });

  it("sums to delta through ReduceLogSumExp and DepthToSpace/SpaceToDepth", async () => {
    const bytes = tiny(
      [2, 4, 4],
      (g, x) => {
        const h = g.node("Tanh", [g.node("Conv", [x, weights(g, [8, 2, 3, 3], 84)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })]);
        const f = g.node("SpaceToDepth", [g.node("DepthToSpace", [g.node("Mul", [h, g.constant([], [4])])], { blocksize: 2, mode: "CRD" })], {
          blocksize: 2,
        });
        const lse = g.node("ReduceLogSumExp", [f, g.constantInt64([1])], { keepdims: 1 }); // [N,1,4,4]
        return g.node("Conv", [g.node("DepthToSpace", [g.node("Mul", [f, lse])], { blocksize: 2 }), weights(g, [1, 2, 1, 1], 85)], {
          kernel_shape: [1, 1],
        });
      },
      [],
      18,
    );
    const [lhs, rhs] = await completeness(bytes, [1, 2, 4, 4], 13);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });

  it("the max rule stays exact where the reference's maxima tie (a constant baseline: every window alike)", async () => {
    const bytes = tiny([2, 5, 5], (g, x) => {
      // no pads: constant on a constant input
      const h = g.node("Relu", [g.node("Conv", [x, weights(g, [4, 2, 3, 3], 91)], { kernel_shape: [3, 3] })]);
      const both = g.node("Concat", [g.node("GlobalMaxPool", [h]), g.node("ReduceMin", [h], { axes: [2, 3], keepdims: 1 })], { axis: 1 });
      const pooled = g.node("Conv", [both, weights(g, [4, 8, 1, 1], 92)], { kernel_shape: [1, 1] });
      const spatial = g.node("Max", [h, g.node("Mul", [h, g.constant([], [0.5])]), g.node("ReduceMax", [h], { axes: [1], keepdims: 1 })]);
      return g.node("Sigmoid", [g.node("Conv", [g.node("Add", [spatial, pooled]), weights(g, [1, 4, 1, 1], 93)], { kernel_shape: [1, 1] })]);
    });
    const [lhs, rhs] = await completeness(bytes, [1, 2, 5, 5], 11, new Float32Array(50).fill(0.4));
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });

  it("sums to delta through bilinear Einsums (attention without its Softmax) and one-operand Einsums", async () => {
    const bytes = tiny([2, 3, 4], (g, x) => {
      const q = g.node("Tanh", [g.node("MatMul", [x, weights(g, [4, 4], 111)])]);
      const k = g.node("Sigmoid", [g.node("MatMul", [x, weights(g, [4, 4], 112)])]);
      const scores = g.node("Tanh", [g.node("Einsum", [q, k], { equation: "blxd,blyd->blxy" })]);
      const out = g.node("Einsum", [scores, g.node("Mul", [x, x])], { equation: "bhxy,bhyd->bhxd" });
      return g.node("Einsum", [g.node("Einsum", [out], { equation: "bhxd->bdx" }), weights(g, [4], 113)], { equation: "bdx,d->bx" });
    });
    const [lhs, rhs] = await completeness(bytes, [1, 2, 3, 4], 15);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });

  it("at an intermediate layer: Σ m_T·(T - T_ref) over the returned activations equals the output delta", async () => {
    const g = new GraphBuilder("layer");
    const x = g.input("x", ["N", 2, 6, 6]);
    const t = g.node("Relu", [g.node("Conv", [x, weights(g, [3, 2, 3, 3], 51)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })], {}, ["t"]);
    const p = g.node("MaxPool", [t], { kernel_shape: [2, 2], strides: [2, 2] });
    g.node("Sigmoid", [g.node("Conv", [p, weights(g, [1, 3, 1, 1], 52)], { kernel_shape: [1, 1] })], {}, ["y"]);
    g.output("y", ["N", 1, 3, 3]);
    const bytes = g.toBytes();
    const gm = buildGradientModel(parseModel(bytes), { rule: "deeplift", wrt: ["t"] });
    expect(Object.keys(gm.referenceActivations!)).toEqual(["t"]);
    const xv = values(72, 61);
    const rv = values(72, 62, -0.2, 0.2);
    const seed = values(9, 63, 0, 1);
    const res = await run(gm.bytes, {
      x: new ort.Tensor("float32", xv, [1, 2, 6, 6]),
      [gm.referenceInput!]: new ort.Tensor("float32", rv, [1, 2, 6, 6]),
      [gm.seedInput]: new ort.Tensor("float32", seed, [1, 1, 3, 3]),
    });
    const m = res[gm.gradients.t].data as Float32Array;
    const a = res[gm.activations.t].data as Float32Array;
    const ar = res[gm.referenceActivations!.t].data as Float32Array;
    const yx = (await run(bytes, { x: new ort.Tensor("float32", xv, [1, 2, 6, 6]) })).y.data as Float32Array;
    const yr = (await run(bytes, { x: new ort.Tensor("float32", rv, [1, 2, 6, 6]) })).y.data as Float32Array;
    let lhs = 0;
    for (let i = 0; i < m.length; i++) lhs += m[i] * (a[i] - ar[i]);
    let rhs = 0;
    for (let k = 0; k < 9; k++) rhs += seed[k] * (yx[k] - yr[k]);
    expect(Math.abs(rhs)).toBeGreaterThan(0.01);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(rhs) + 1e-6);
  });
});

/** The image input's dims, batch 2 where it is symbolic. */
function inputDims(model: ReturnType<typeof parseModel>): number[] {
  const t = model.graph!.input[0].type!.value;
  if (t.case !== "tensorType") throw new Error("the image input is not a tensor");
  return t.value.shape!.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : 2));
}

describe("shipped zoo models", () => {
  const models = readdirSync(join(ROOT, "models")).filter((f) => f.endsWith(".onnx"));
  it.each(models)("%s: gradient graph builds and runs; forward output unchanged", async (file) => {
    const bytes = readFileSync(join(ROOT, "models", file));
    const model = parseModel(bytes);
    const gm = buildGradientModel(model);
    // batch 2: the batch dimension stays dynamic through the backward pass
    const dims = inputDims(model);
    const x = values(prod(dims), 13, 0, 1);
    // The plain forward without ORT's fusions: "extended" fuses e.g. an Erf GELU (UNeXt) into one kernel that rounds
    // differently, and cannot in the gradient graph, whose backward nodes read the intermediate tensors.
    const fwd = (await run(bytes, { image: new ort.Tensor("float32", x, dims) }, { graphOptimizationLevel: "basic" })).mask as ort.Tensor;
    const seed = new Float32Array(fwd.data.length);
    seed.fill(1, 0, seed.length / 2);
    const res = await run(gm.bytes, { image: new ort.Tensor("float32", x, dims), [gm.seedInput]: new ort.Tensor("float32", seed, fwd.dims) });
    expect(Array.from(res[gm.output].data as Float32Array)).toEqual(Array.from(fwd.data as Float32Array));
    const grad = res[gm.gradients.image].data as Float32Array;
    expect(grad.length).toBe(x.length);
    expect(grad.every(Number.isFinite)).toBe(true);
    expect(grad.some((v) => v !== 0)).toBe(true);
  });
});

describe("static shape inference", () => {
  // deeplab computes Resize sizes and Expand shapes from Shape; segformer folds the batch into tokens.
  it.each(["deeplab-hc18.onnx", "segformer-ph2.onnx"])(
    "%s: every tensor's shape (and integer value) equals ONNX Runtime's at batch 2",
    async (file) => {
      const bytes = readFileSync(join(ROOT, "models", file));
      const model = parseModel(bytes);
      const infos = inferStatic(model, 2);
      const names = tensorNames(model);
      const dims = inputDims(model);
      const res = await run(exposeTensors(model, names), { image: new ort.Tensor("float32", new Float32Array(prod(dims)).fill(0.5), dims) });
      for (const n of names) {
        expect(infos.get(n)!.dims, n).toEqual([...(res[n] as ort.Tensor).dims]);
        const v = infos.get(n)!.value;
        if (v && res[n].type === "int64") expect(v, n).toEqual(Array.from(res[n].data as BigInt64Array, Number));
      }
    },
  );

  it("Einsum: explicit, implicit (alphabetical output) and ellipsis equations get ONNX Runtime's shapes", async () => {
    const g = new GraphBuilder("einsum");
    const x = g.input("x", ["N", 2, 3, 4]);
    const w = weights(g, [4, 5], 121);
    const outs = [
      g.node("Einsum", [x, w], { equation: "blxd,de->bexl" }),
      g.node("Einsum", [x, w], { equation: "nlxd, da" }), // implicit: "alnx"
      g.node("Einsum", [x, w], { equation: "...d,de->...e" }),
      g.node("Einsum", [x, x], { equation: "b...d,b...d" }), // implicit: the ellipsis, then nothing
      g.node("Einsum", [x], { equation: "blxd->" }),
    ];
    outs.forEach((o) => g.output(o, []));
    const model = parseModel(g.toBytes());
    const infos = inferStatic(model, 2);
    const res = await run(g.toBytes(), { x: new ort.Tensor("float32", new Float32Array(48).fill(0.5), [2, 2, 3, 4]) });
    for (const o of outs) expect(infos.get(o)!.dims, o).toEqual([...(res[o] as ort.Tensor).dims]);
    expect(infos.get(outs[1])!.dims).toEqual([5, 2, 2, 3]);
  });
});

/** Reads a little-endian float32 .npy file. */
function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(path);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString("latin1");
  if (!header.includes("'<f4'")) throw new Error(`${path}: expected float32 data`);
  const shape = header
    .match(/\(([^)]*)\)/)![1]
    .split(",")
    .filter((s) => s.trim())
    .map(Number);
  const body = buf.subarray(10 + headerLen);
  return { shape, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

/** Same formula as synthetic_image() in training/make_grad_fixture.py. */
function syntheticImage(size: number): Float32Array {
  const img = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x - 0.55 * size) / (0.32 * size);
      const v = (y - 0.5 * size) / (0.26 * size);
      const r = Math.sqrt(u * u + v * v);
      const val = 0.25 + 0.5 * Math.exp(-((r - 1) ** 2) / 0.02) + 0.1 * Math.sin(0.31 * x) * Math.cos(0.17 * y);
      img[y * size + x] = Math.min(Math.max(val, 0), 1);
    }
  }
  return img;
}

describe("PyTorch autograd reference", () => {
  const fixture = join(ROOT, "test", "fixtures", "grad-unet-hc18.npy");
  it.runIf(existsSync(fixture))("unet-hc18 input gradient of a RoI seed matches torch (float64) to relative L2 < 1e-3", async () => {
    const meta = JSON.parse(readFileSync(fixture.replace(/\.npy$/, ".json"), "utf8"));
    const ref = readNpy(fixture);
    const bytes = readFileSync(join(ROOT, meta.model));
    const gm = buildGradientModel(parseModel(bytes));
    const size = 128;
    const seed = new Float32Array(size * size);
    const { row, col, height, width } = meta.roi;
    for (let y = row; y < row + height; y++) seed.fill(1, y * size + col, y * size + col + width);
    const res = await run(gm.bytes, {
      image: new ort.Tensor("float32", syntheticImage(size), [1, 1, size, size]),
      [gm.seedInput]: new ort.Tensor("float32", seed, [1, 1, size, size]),
    });
    const grad = res[gm.gradients.image].data as Float32Array;
    expect(ref.shape).toEqual([1, 1, size, size]);
    let num = 0;
    let den = 0;
    for (let i = 0; i < grad.length; i++) {
      num += (grad[i] - ref.data[i]) ** 2;
      den += ref.data[i] ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
  });
});
