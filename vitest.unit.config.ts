import { defineConfig } from "vitest/config";

// `npm run test:unit`: the fast tests (known answers on tiny hand-built models and pure functions),
// without the ONNX Runtime-heavy end-to-end files (CLI runs, shipped models, gradient graphs, benchmark).
export default defineConfig({
  test: {
    include: [
      "test/counts.test.ts",
      "test/report.test.ts",
      "test/image.test.ts",
      "test/oracle.test.ts",
      "test/widen.test.ts",
      "test/occlusion.test.ts",
      "test/pdcr.test.ts",
      "test/perturbation.test.ts",
      "test/strategies.test.ts",
      "test/streams.test.ts",
      "test/cell-key.test.ts",
      "test/architecture-doc.test.ts",
    ],
    testTimeout: 60_000,
  },
});
