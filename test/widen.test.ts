import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  TensorProto_DataType as DT,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TypeProto_SequenceSchema,
  TypeProtoSchema,
} from "onnx-buf";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCase } from "../src/data/case.js";
import { explainSaliency } from "../src/explain/saliency.js";
import { Model } from "../src/model/model.js";
import { type AttrValue, attribute, GraphBuilder, int64Tensor, valueInfo } from "../src/onnx/builder.js";
import { halfToFloat, widenFloat16 } from "../src/onnx/widen.js";
import { sha256 } from "../src/util/hash.js";
import { tmp, writeImage, writeModel } from "./helpers/tiny.js";

let dir: string;
beforeAll(() => {
  dir = tmp("segcause-widen-");
});

/** The binary16 pattern of v, for values that are exact normal halves (the test's weights). */
function toHalf(v: number): number {
  if (v === 0) return 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const m = (a / 2 ** e - 1) * 1024;
  if (!Number.isInteger(m) || e < -14 || e > 15) throw new Error(`${v} is not an exact normal half`);
  return (v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | m;
}

/** A tensor of 16-bit patterns as an exporter writes it: raw little-endian bytes, or one pattern per int32_data entry. */
function bitsTensor(name: string, dims: number[], bits: number[], type: DT, storage: "raw" | "int32" = "raw"): TensorProto {
  const t = create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: type });
  if (storage === "int32") t.int32Data = bits;
  else t.rawData = new Uint8Array(Uint16Array.from(bits).buffer);
  return t;
}

/** values as a float32 tensor, or as float16 in the given storage */
function tensor(name: string, dims: number[], values: number[], half: boolean, storage: "raw" | "int32" = "raw"): TensorProto {
  if (half) return bitsTensor(name, dims, values.map(toHalf), DT.FLOAT16, storage);
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: DT.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) });
}

function node(opType: string, input: string[], output: string[], attrs: Record<string, AttrValue> = {}): NodeProto {
  return create(NodeProtoSchema, {
    name: `/${opType}_${output[0]}`,
    opType,
    input,
    output,
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
  });
}

const W = [0.5, -0.25, 1, -1, 0.75, 0.125]; // [2, 3, 1, 1]
const B = [-0.5, 0.25];
const K = [-2, 2]; // Constant node, [2, 1, 1]: class 1 predicted everywhere
const FILL = 0.25; // ConstantOfShape
const BRANCH = 0.5; // If (condition true)

/**
 * mask = Cast(Sigmoid(Cast(Conv(image, W, B) + K + FILL [+ BRANCH], to=FLOAT)), to=T), as a `model.half()`
 * export writes it (T = FLOAT16: every weight, constant and declared type half) or its float32 twin.
 * W raw, B in int32_data, K a Constant node, FILL a ConstantOfShape, BRANCH an If subgraph's Constant.
 */
function halfModel(half: boolean, opts: { branch?: boolean; stride?: number } = {}): Uint8Array {
  const T = half ? DT.FLOAT16 : DT.FLOAT;
  const stride = opts.stride ?? 1;
  const out = 16 / stride;
  const nodes = [
    node("Conv", ["image", "W", "B"], ["conv"], { kernel_shape: [1, 1], strides: [stride, stride] }),
    node("Constant", [], ["k"], { value: tensor("k", [2, 1, 1], K, half) }),
    node("ConstantOfShape", ["one"], ["fill"], { value: tensor("fill", [1], [FILL], half) }),
    node("Add", ["conv", "k"], ["s1"]),
    node("Add", ["s1", "fill"], ["s2"]),
  ];
  let last = "s2";
  if (opts.branch) {
    const branch = (name: string, v: number) =>
      create(GraphProtoSchema, {
        name,
        node: [node("Constant", [], [`${name}_out`], { value: tensor(`${name}_c`, [1], [v], half) })],
        output: [valueInfo(`${name}_out`, [1], T)],
      });
    const cond = create(TensorProtoSchema, { name: "cond", dims: [], dataType: DT.BOOL, int32Data: [1] });
    nodes.push(node("Constant", [], ["cond"], { value: cond }));
    const ifNode = node("If", ["cond"], ["branch"]);
    ifNode.attribute.push(
      create(AttributeProtoSchema, { name: "then_branch", type: AT.GRAPH, g: branch("then", BRANCH) }),
      create(AttributeProtoSchema, { name: "else_branch", type: AT.GRAPH, g: branch("else", -BRANCH) }),
    );
    nodes.push(ifNode, node("Add", ["s2", "branch"], ["s3"]));
    last = "s3";
  }
  nodes.push(node("Cast", [last], ["wide"], { to: DT.FLOAT }), node("Sigmoid", ["wide"], ["p"]), node("Cast", ["p"], ["mask"], { to: T }));
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: "segcause-test",
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: 17n })],
    graph: create(GraphProtoSchema, {
      name: half ? "half" : "twin",
      node: nodes,
      initializer: [tensor("W", [2, 3, 1, 1], W, half), tensor("B", [2], B, half, "int32"), int64Tensor("one", [1], [1])],
      input: [valueInfo("image", ["N", 3, 16, 16], T)],
      output: [valueInfo("mask", ["N", 2, out, out], T)],
      valueInfo: [valueInfo("s2", ["N", 2, out, out], T)],
    }),
  });
  return toBinary(ModelProtoSchema, model);
}

/** Every element type declared or stored anywhere in the model, subgraphs included. */
function elementTypes(model: ModelProto): Set<number> {
  const found = new Set<number>();
  const graph = (g: NonNullable<ModelProto["graph"]>): void => {
    g.initializer.forEach((t) => found.add(t.dataType));
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) if (v.type?.value.case === "tensorType") found.add(v.type.value.value.elemType);
    for (const n of g.node) {
      for (const a of n.attribute) {
        if (a.t) found.add(a.t.dataType);
        if (a.g) graph(a.g);
        if (a.name === "to" || a.name === "dtype") found.add(Number(a.i));
      }
    }
  };
  graph(model.graph!);
  return found;
}

/** The float32 values of a widened tensor's raw data. */
function floats(t: TensorProto): Float32Array {
  expect(t.dataType).toBe(DT.FLOAT);
  expect(t.int32Data).toEqual([]);
  return new Float32Array(Uint8Array.from(t.rawData).buffer);
}

describe("widening float16 models to float32", () => {
  it("half bit patterns become their exact values, from raw_data and from int32_data", () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x7e00, 0x0000, 0x8000, 0x3555];
    const want = [1, -2, 65504, 2 ** -24, -(2 ** -24), 1023 * 2 ** -24, 2 ** -14, Infinity, -Infinity, NaN, 0, -0, 0.333251953125];
    for (const storage of ["raw", "int32"] as const) {
      const g = new GraphBuilder("bits");
      const x = g.input("x", [bits.length]);
      g.output(g.node("Add", [x, "h"], {}, ["y"]), [bits.length]);
      const m = fromBinary(ModelProtoSchema, g.toBytes());
      m.graph!.initializer.push(bitsTensor("h", [bits.length], bits, DT.FLOAT16, storage));
      const w = widenFloat16(m)!;
      const got = floats(w.proto.graph!.initializer.find((t) => t.name === "h")!);
      expect(Array.from(got)).toEqual(want); // toEqual tells -0 from 0 and accepts NaN for NaN
      // a NaN keeps its payload and sign (0x7e00: quiet NaN → 0x7fc00000)
      expect(new Uint32Array(got.buffer)[9]).toBe(0x7fc00000);
      // the model given is left as it was
      expect(m.graph!.initializer.find((t) => t.name === "h")!.dataType).toBe(DT.FLOAT16);
    }
    expect(bits.map(halfToFloat)).toEqual(want);
  });

  it("the decoder is exact on all 65,536 halves: one ulp of the lower value per step (2^-24 up to 2^-13, doubling each binade), odd in the sign bit", () => {
    const bad: number[] = [];
    for (let h = 1; h <= 0x7bff; h++) if (halfToFloat(h) - halfToFloat(h - 1) !== 2 ** (Math.max((h - 1) >> 10, 1) - 25)) bad.push(h);
    for (let h = 0; h < 0x8000; h++) if (!Object.is(halfToFloat(h | 0x8000), -halfToFloat(h))) bad.push(h);
    for (let h = 0x7c01; h < 0x8000; h++) if (!Number.isNaN(halfToFloat(h))) bad.push(h);
    expect(bad).toEqual([]);
    expect(halfToFloat(0)).toBe(0);
    expect(halfToFloat(0x7bff) * 2 ** -5).toBe(2047); // the largest half is 2047 · 2^5
  });

  it("bfloat16, sparse initializers, dtype attributes and types inside sequences are widened; a float32 model is left alone", () => {
    const build = (eye: DT, noise: DT) => {
      const g = new GraphBuilder("mixed");
      const x = g.input("x", [2, 2]);
      g.node("EyeLike", [x], { dtype: eye }, ["eye"]);
      g.node("RandomNormalLike", [x], { dtype: noise }, ["noise"]);
      g.node("Cast", [x], { to: DT.INT64 }, ["ints"]);
      g.output(g.node("Add", [x, x], {}, ["y"]), [2, 2]);
      return fromBinary(ModelProtoSchema, g.toBytes());
    };
    expect(widenFloat16(build(DT.FLOAT, DT.DOUBLE))).toBeUndefined();

    const m = build(DT.FLOAT16, DT.BFLOAT16);
    m.graph!.initializer.push(bitsTensor("bf", [4], [0x3f80, 0xc000, 0x7f80, 0x0001], DT.BFLOAT16));
    m.graph!.sparseInitializer.push(
      create(SparseTensorProtoSchema, {
        dims: [10n],
        values: bitsTensor("sp", [2], [0x3800, 0xb400], DT.FLOAT16, "int32"),
        indices: int64Tensor("sp_i", [2], [3, 7]),
      }),
    );
    // a sequence of float16 tensors
    const seq = valueInfo("seq", [2], DT.FLOAT16);
    seq.type = create(TypeProtoSchema, { value: { case: "sequenceType", value: create(TypeProto_SequenceSchema, { elemType: seq.type }) } });
    m.graph!.valueInfo.push(seq);
    const w = widenFloat16(m)!;
    const bf = new Uint32Array(floats(w.proto.graph!.initializer.find((t) => t.name === "bf")!).buffer);
    expect(Array.from(bf)).toEqual([0x3f800000, 0xc0000000, 0x7f800000, 0x00010000]);
    expect(Array.from(floats(w.proto.graph!.sparseInitializer[0].values!))).toEqual([0.5, -0.25]);
    expect(w.proto.graph!.sparseInitializer[0].indices!.int64Data).toEqual([3n, 7n]);
    const attr = (out: string, name: string) =>
      Number(w.proto.graph!.node.find((n) => n.output[0] === out)!.attribute.find((a) => a.name === name)!.i);
    expect([attr("eye", "dtype"), attr("noise", "dtype"), attr("ints", "to")]).toEqual([DT.FLOAT, DT.FLOAT, DT.INT64]);
    const t = w.proto.graph!.valueInfo.find((v) => v.name === "seq")!.type!.value;
    expect(t.case === "sequenceType" && t.value.elemType?.value.case === "tensorType" && t.value.elemType.value.value.elemType).toBe(DT.FLOAT);
    expect(w.notes).toEqual([
      "bfloat16/float16 model widened to float32 at load (2 tensor(s), 2 Cast/dtype attribute(s), 1 declared type(s)): ONNX Runtime's CPU provider lacks most bfloat16/float16 kernels; outputs may differ from a bfloat16/float16 run in the last bits",
    ]);
  });

  it("Model.load runs a float16 export as float32: the float32 twin's outputs and gradients, with a note, the file's hash and widened bytes", async () => {
    const img = await writeImage(dir, "img.png", (y, x) => (37 * y + 11 * x) % 256, 16);
    const halfPath = writeModel(dir, "half.onnx", halfModel(true, { branch: true }));
    const half = await Model.load(halfPath, { threads: 1 });
    const twin = await Model.load(writeModel(dir, "twin.onnx", halfModel(false, { branch: true })), { threads: 1 });
    // the note, and the file as given stays the model's identity
    expect(half.resolved.assumptions.join("\n")).toContain(
      "float16 model widened to float32 at load (6 tensor(s), 1 Cast/dtype attribute(s), 5 declared type(s)): ONNX Runtime's CPU provider lacks most float16 kernels; outputs may differ from a float16 run in the last bits",
    );
    expect(half.sha256).toBe(sha256(readFileSync(halfPath)));
    expect([half.fileGraph.inputs[0].elemType, half.graph.inputs[0].elemType, half.graph.outputs[0].elemType]).toEqual(["FLOAT16", "FLOAT", "FLOAT"]);
    // what every session, gradient graph and component cut is built from holds no half anywhere
    expect(elementTypes(half.proto()).has(DT.FLOAT16)).toBe(false);
    expect(widenFloat16(half.proto())).toBeUndefined();
    expect(half.card).toEqual(twin.card);

    const [yh, yt] = [await outputOf(half, img), await outputOf(twin, img)];
    expect(yh.length).toBe(2 * 256);
    expect(Array.from(yh)).toEqual(Array.from(yt));
    // the known answer: sigmoid(W·x + B + K + FILL + BRANCH), x = pixel / 255
    const kase = await loadCase(twin, img);
    const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
    for (const p of [0, 17, 255]) {
      const px = [0, 1, 2].map((c) => kase.image.data[p * 3 + c] / 255);
      for (const c of [0, 1]) {
        const want = sigmoid(W[3 * c] * px[0] + W[3 * c + 1] * px[1] + W[3 * c + 2] * px[2] + B[c] + K[c] + FILL + BRANCH);
        expect(yh[c * 256 + p]).toBeCloseTo(want, 6);
      }
    }
    await Promise.all([half.release(), twin.release()]);

    // gradients (no control flow: gradient graphs refuse it) are built from the widened bytes too
    const gh = await Model.load(writeModel(dir, "half-grad.onnx", halfModel(true)), { threads: 1 });
    const gt = await Model.load(writeModel(dir, "twin-grad.onnx", halfModel(false)), { threads: 1 });
    const roi = { roi: { row: 4, col: 4, height: 8, width: 8 } };
    const [sh, st] = [await explainSaliency(gh, await loadCase(gh, img), roi), await explainSaliency(gt, await loadCase(gt, img), roi)];
    expect(Math.max(...sh.map)).toBeGreaterThan(0);
    expect(Array.from(sh.map)).toEqual(Array.from(st.map));
    await Promise.all([gh.release(), gt.release()]);
  });

  it("a float16 output at 1/2 size is widened before the adapter upsamples it with float32 matrices", async () => {
    const img = await writeImage(dir, "img2.png", (y, x) => (13 * y + 29 * x) % 256, 16);
    const half = await Model.load(writeModel(dir, "half-lowres.onnx", halfModel(true, { stride: 2 })), { threads: 1 });
    const twin = await Model.load(writeModel(dir, "twin-lowres.onnx", halfModel(false, { stride: 2 })), { threads: 1 });
    const notes = half.resolved.assumptions.join("\n");
    expect(notes).toMatch(/float16 model widened to float32 at load[^\n]*\n.*upsampled bilinearly/);
    expect(half.graph.outputs[0]).toEqual({ name: "mask", elemType: "FLOAT", dims: ["N", 2, 16, 16] });
    const [yh, yt] = [await outputOf(half, img), await outputOf(twin, img)];
    expect(yh.length).toBe(2 * 256);
    expect(Array.from(yh)).toEqual(Array.from(yt));
    await Promise.all([half.release(), twin.release()]);
  });

  it("integer image inputs are still refused with their type, float16 weights or not", async () => {
    for (const [type, name] of [
      [DT.INT64, "INT64"],
      [DT.UINT8, "UINT8"],
    ] as const) {
      const m = fromBinary(ModelProtoSchema, halfModel(true));
      const g = m.graph!;
      g.input[0] = valueInfo("raw", ["N", 3, 16, 16], type);
      g.node.unshift(node("Cast", ["raw"], ["image"], { to: DT.FLOAT16 }));
      await expect(Model.load(writeModel(dir, `${name}.onnx`, toBinary(ModelProtoSchema, m)))).rejects.toThrow(
        new RegExp(`^model input 'raw' is ${name}, but segcause feeds float32 images$`),
      );
    }
  });
});

async function outputOf(m: Model, image: string): Promise<Float32Array> {
  const kase = await loadCase(m, image);
  return Float32Array.from(await m.infer(m.preprocess(kase.image), 1));
}
