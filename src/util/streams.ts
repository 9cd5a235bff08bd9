/**
 * Every random stream of segcause, named in one place. A random number is a pure function of
 * (seed, stream, index) (util/rng.ts), so two uses that share a seed within one computation must
 * use different streams or their draws would be the same numbers (uses in different computations,
 * e.g. SmoothGrad's per-sample streams and LIME's coalitions, may overlap). The values never change:
 * every map, RoI, curve and published interval for a given seed is decided by them.
 *
 * Sample numbering, engine by engine (what (seed, stream, index) means):
 * - Block engine (PdCR, zero ablation, donor ATE; explain/block-effects.ts): the stream is the unit
 *   number and the index the unit's draw number j, so a unit's j-th sample is the same whatever the
 *   batch, the unit order or where a run resumed. The paper schedule's screen takes draws 0..S−1
 *   and its refinement continues at S; the fast schedule's round r takes draws r·R + h (stratum h,
 *   stream −1 when all blocks share the round's draws); a quadtree group is unit
 *   units.length + g, member m of its draw j at index j·65536 + m. Components use the same
 *   (unit, draw) numbering for their donor draws.
 * - Coalition engine (LIME, KernelSHAP) and RISE: sample i gets its own seed
 *   hash3(seed, stream, i); the sample's values are then streams 0, 1, ... under that seed
 *   (a unit's keep bit is index j of stream 0).
 * - Gradient noise (SmoothGrad): sample j is stream smoothGradNoise + j, index the input element.
 * - Evaluate: one stream per purpose below, indexed by rank-unit label, pixel or draw.
 * - Patch bank (data/patchbank.ts): the crops of image i are stream i under the bank's seed.
 * - Benchmarks (src/bench): synthetic data from stream 0 of seed 1.
 */
export const STREAM = {
  /** evaluate: tie-break key of each rank unit (index = unit label) */
  tieBreak: 0x7e51,
  /** evaluate: the random control's order (index = unit label) */
  randomOrder: 0x7e52,
  /** evaluate: which bank patch each natural-patch draw of a curve point uses (index = draw) */
  fillDraws: 0x7e53,
  /** evaluate --stability: Gaussian pixel noise (indices 2i and 2i + 1 for pixel i) */
  noise: 0x7e54,
  /** evaluate: folds an image id and RoI kind into the stream that places its RoIs (evaluate/rois.ts) */
  roi: 0x7e55,
  /** evaluate tables: cluster bootstrap resamples, seeded by the number of clusters */
  bootstrap: 0x5eed_b007,
  /** LIME's Bernoulli coalitions (index = sample); KernelSHAP's paired coalitions use coalition + 1 (index = pair) */
  coalition: 0x5a3c,
  /** RISE masks (index = mask) */
  rise: 0x415e,
  /** SmoothGrad: the first sample's noise stream; sample j uses smoothGradNoise + j */
  smoothGradNoise: 0x5600,
  /** natural patches: the patch of each further tile of a unit larger than a patch, seeded by the draw (index = tile) */
  patchTile: 0x7a11,
  /** `segcause components --donors`: which donor images are picked (seeded by --seed) */
  donorPick: 7,
  /** `segcause dataset`: the seeded shuffle that assigns images to splits */
  splitShuffle: 11,
  /** `segcause bank build` on volumes: where each box is cut (sequential under the bank's seed) */
  volumeBank: 0x766f6c,
} as const;
