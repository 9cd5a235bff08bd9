/**
 * Tiny token models for the changed-region graph: a conv, a reshape into tokens whose batch is read from the
 * tensor's shape (as exporters write it), attention-like mixing (a Softmax over all tokens), a reshape back
 * and a residual add. With several items in one call, a batch read as a constant would mix the items.
 */
import { GraphBuilder } from "../../src/onnx/builder.js";

/** How the token reshape reads its batch: Shape → Gather (torch.onnx), Shape(start 0, end 1) (opset 15, dynamo), or Size / (C·H·W). */
export type BatchForm = "gather" | "start-end" | "size";

export function tokenModel(form: BatchForm): Uint8Array {
  const [C, H, W] = [2, 32, 32];
  const g = new GraphBuilder(`tokens-${form}`);
  const x = g.input("image", ["N", 3, H, W]);
  const w1 = new Float32Array(C * 3 * 9).map((_, i) => ((i * 7) % 11) / 20 - 0.2);
  const c = g.node("Conv", [x, g.constant([C, 3, 3, 3], w1), g.constant([C], [0.1, -0.2])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const batch =
    form === "gather"
      ? g.node("Gather", [g.node("Shape", [c]), g.constantInt64([0])], { axis: 0 })
      : form === "start-end"
        ? g.node("Shape", [c], { start: 0, end: 1 })
        : g.node("Reshape", [g.node("Div", [g.node("Size", [c]), g.constantInt64([C * H * W])]), g.constantInt64([1])]);
  const tokens = g.node("Reshape", [c, g.node("Concat", [batch, g.constantInt64([C, H * W])], { axis: 0 })]);
  const mixed = g.node("Reshape", [g.node("Softmax", [g.node("Mul", [tokens, g.constant([1], [4])])], { axis: -1 }), g.node("Shape", [c])]);
  const y = g.node("Add", [c, g.node("Mul", [mixed, g.constant([1], [50])])]);
  const w2 = new Float32Array(C * 9).map((_, i) => ((i * 5) % 7) / 10 - 0.2);
  const out = g.node("Conv", [y, g.constant([1, C, 3, 3], w2), g.constant([1], [-0.3])], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.output(g.node("Sigmoid", [out], {}, ["mask"]), ["N", 1, H, W]);
  return g.toBytes();
}
