/** The worker's bounded model cache: at most N loaded, the least recently used released first, never one in use. */
import { describe, expect, it } from "vitest";
import { ModelCache } from "../src/queue/model-cache.js";

describe("ModelCache", () => {
  it("keeps at most max values, releases the least recently used, and never one in use", async () => {
    const released: string[] = [];
    const loads: string[] = [];
    const cache = new ModelCache<{ release(): Promise<void> }>(2, (k) => released.push(k));
    const load = (k: string) => async () => {
      loads.push(k);
      return { release: async () => {} };
    };
    const use = (k: string, f: () => Promise<void> = async () => {}) => cache.use(k, load(k), f);
    await use("a");
    await use("b");
    await use("a"); // a is now the most recent
    await use("c"); // b goes
    expect([loads, released, cache.size]).toEqual([["a", "b", "c"], ["b"], 2]);
    // with a and d in use, loading e goes over the bound: the least recent value not in use (c, then e itself) is released, never a or d
    await use("a", async () => {
      await use("d", async () => {
        await use("e", async () => expect(cache.size).toBe(3));
      });
    });
    expect([released, cache.size]).toEqual([["b", "c", "e"], 2]);
    await cache.clear();
    expect(cache.size).toBe(0);
  });
});
