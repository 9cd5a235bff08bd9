/** segcause library API. */

export { type Case, loadCase } from "./data/case.js";
export { listImages, loadImage, loadMask, type RasterImage } from "./data/image.js";
export {
  casesInSplits,
  type Dataset,
  datasetFromFolders,
  type ManifestCase,
  readManifest,
  type VolumeEntry,
  volumeCasesInSplits,
} from "./data/manifest.js";
export { buildPatchBank, PatchBank } from "./data/patchbank.js";
export { readCaseImage, readCaseMask, type VolumeCaseMask } from "./data/volume/case-files.js";
export { type ModelSpace, mapToInput, maskToModel, modelSpaceOf } from "./data/volume/model-space.js";
export { buildVolumeBank, VolumeBank } from "./data/volume/volume-bank.js";
export { loadVolumeCase, type Placement, readVolume, type VolumeCase } from "./data/volume/volume-case.js";
export { SegcauseError } from "./errors.js";
export { type RunControl, runEvaluation } from "./evaluate/benchmark.js";
export { distanceUnits, type Ranking, randomUnits, rankUnits } from "./evaluate/ordering.js";
export { type EvaluateConfig, type MethodRun, PROTOCOL_DEFAULTS, type Protocol } from "./evaluate/protocol.js";
export { type DomainUnits, domainUnits, parseRankUnits, type RankUnits } from "./evaluate/rank-units.js";
export { METRIC_DEFINITIONS, writeEvaluationReport } from "./evaluate/report.js";
export { type PlacedRoi, parseRoiSpec, type RoiSpec, selectRois } from "./evaluate/rois.js";
export { findMaps } from "./evaluate/strategies/maps.js";
export { writeStrategyReport } from "./evaluate/strategies/report.js";
export { classify, STRATEGY_DEFAULTS, type StrategyClass, type StrategyStats, strategyStats } from "./evaluate/strategies/stats.js";
export { type Summary, summarize } from "./evaluate/summary.js";
export { type WilcoxonResult, wilcoxon } from "./evaluate/wilcoxon.js";
export type { Attribution, AttributionCore, Provenance, UnitResult } from "./explain/attribution.js";
export { allMethods, getMethod, methodNames } from "./explain/catalog.js";
export { type Ablation, COMPONENT_OPTIONS, type ComponentEffects, type ComponentOptions, explainComponents } from "./explain/components.js";
export type { UnitEstimate } from "./explain/estimators.js";
// Methods: one entry point and the registry; a method is declared with defineMethod and the option builders.
export { type ExplainInput, explain } from "./explain/explain.js";
export type { FillKind } from "./explain/interventions.js";
export {
  type CheckContext,
  defineMethod,
  type MethodContext,
  type MethodDefinition,
  type MethodFamily,
  type MethodSpec,
  resolveOptions,
} from "./explain/methods.js";
export { choice, fillOptions, int, type MethodOption, num, numbers, type OptionDecl, type OptionValues, text } from "./explain/options.js";
export { type KeyLayout, RunContext, type RunOptions, SampleScorer } from "./explain/run.js";
export { explainVolumeBlocks, type SlidingCount, type VolumeAttribution, type VolumeBlockSpec, volumeTarget } from "./explain/volume/engine.js";
export { importanceMap, slidingWindows, VolumeForward, windowStarts } from "./explain/volume/windows.js";
export { type BundledModel, findModel, findZoo, models, ZOO_INSTALL, ZOO_PACKAGE } from "./model/bundled.js";
export { type CardOverrides, type ModelCard, ModelCardSchema } from "./model/card.js";
export { Model, type ModelLoadOptions } from "./model/model.js";
export { Runner, type RunnerOptions } from "./model/runner.js";
export { isVolumeModel, type VolumeCard, VolumeCardSchema } from "./model/volume-card.js";
export { VolumeModel, type VolumeOutputLayout } from "./model/volume-model.js";
export { bottleneck, type FeatureMap, featureMaps } from "./onnx/feature-maps.js";
export { buildSuffix, type Component, type ComponentLevel, exposeTensors, listComponents, planCut, tensorNames } from "./onnx/surgery.js";
export { countLines, type EvidenceCounts, FDR, type UnitEvidence, unitEvidence } from "./report/counts.js";
export { colourScale, parseScale, type ScaleSpec } from "./report/scale.js";
export { mapStats } from "./report/stats.js";
export { writeVolumeAttribution } from "./report/volume-write.js";
export { writeAttribution } from "./report/write.js";
export type { OutcomeName } from "./target/outcome.js";
export { parseRoi, Region, type RoiRect } from "./target/roi.js";
export { resolveTarget, type Target, type TargetSpec } from "./target/target.js";
export { resolveVolumeRoi, resolveVolumeTarget, type VolumeOutput, type VolumeTarget, type VolumeTargetSpec } from "./target/volume-target.js";
export { decodeNpy, encodeNpy } from "./util/npy.js";
export { VERSION } from "./version.js";
