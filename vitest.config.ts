import { defineConfig } from "vitest/config";

/**
 * Files that run alone, after the others (one at a time): `npm pack` rebuilds dist/ under every CLI test
 * (packed), real Redis with stall times and kill timing (queue*, incl. queue-volume), Chromium with software WebGL and
 * 20 s polls (the browser tests), run-queue order and SIGTERM timing (view-api), CLI processes 2 at a
 * time of their own (cli-errors-inputs), and every shipped model at 2 threads (zoo-methods).
 */
const ALONE = [
  "test/packed.test.ts",
  "test/queue.test.ts",
  "test/queue-explain.test.ts",
  "test/queue-volume.test.ts",
  "test/view-browser.test.ts",
  "test/view-volume-browser.test.ts",
  "test/view-volume-tiny-browser.test.ts",
  "test/view-volume-dicom.test.ts",
  "test/view-api.test.ts",
  "test/cli-errors-inputs.test.ts",
  "test/zoo-methods.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // CI has 2 cores. The other files run 2 at a time first: ONNX Runtime does not spin (runtime.ts), so
    // one file's tiny-model sessions and single-threaded CLI children leave the second core mostly idle.
    projects: [
      {
        extends: true,
        test: { name: "pairs", include: ["test/**/*.test.ts", "src/**/*.test.ts"], exclude: ALONE, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      { extends: true, test: { name: "alone", include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
