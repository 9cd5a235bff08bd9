/**
 * Gradient graphs of ONNX models (build.ts). The emitter writes backward nodes, each op family's
 * backward rule lives in rules/, the registry maps op types to rules, and path.ts finds the nodes a
 * gradient flows through.
 */
export { buildGradientModel, GRADIENT_OPSET, type GradientGraphOptions, type GradientModel } from "./build.js";
export type { BackwardRule } from "./context.js";
export { DEEPLIFT_EPS } from "./deeplift.js";
export { SUPPORTED_OPS } from "./registry.js";
