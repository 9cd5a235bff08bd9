import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // ORT sessions are heavy; run test files one at a time on 2 cores.
    fileParallelism: false,
  },
});
