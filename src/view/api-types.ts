/**
 * Shapes of the viewer's API answers that the server writes and the page reads. Types only, with no
 * imports: the page (src/view/web, compiled for the browser) imports them as well as the server.
 */

export interface ComponentsFolder {
  kind: "components";
  dir: string;
  level: string;
  ablation: string;
  outcome: string;
  valueUnits: string;
  baseOutcome: number;
  /** ranked by |effect| as components.json holds them */
  units: { rank: number; name: string; effect: number; stderr: number | null; samples: number; status: string }[];
  /** the PNGs the writer drew (bar chart, depth profile, spatial maps), by file name */
  pictures: string[];
  /** at the spatial level: each tensor's map of cell effects (spatial-<i>-<tensor>.png), drawn over the image */
  spatial: string[];
  notes: string[];
  /** the listed image the result was made from, found by its provenance's SHA-256 (absent when not listed) */
  match: { image?: string };
}

/** One summary row: [dataset, model, method, metric, mean, ci95 low, ci95 high, n] */
export type SummaryRow = [string, string, string, string, number, number | null, number | null, number];

export interface CurveGroup {
  dataset: string;
  model: string;
  method: string;
  fill: string;
  /** cells averaged */
  n: number;
  /** mean outcome as the top-ranked pixels are removed (deletion) or restored (insertion), in equal steps */
  deletion: number[];
  insertion: number[];
}

export interface EvaluateData {
  /** the metrics a fill applies to, as `metric:fill` in summary.csv */
  fills: string[];
  summary: SummaryRow[];
  curves: CurveGroup[];
  /** the statistics tables the folder has, each shown filtered (/api/evaluate-table) */
  tables: EvaluateTableName[];
}

export type EvaluateTableName = "pairs.csv" | "ranks.csv" | "strategies/models.csv" | "strategies/model-pairs.csv";

/** The rows of one of an evaluate folder's tables that match the page's filters (the first few hundred). */
export interface EvaluateTable {
  name: string;
  columns: string[];
  /** rows that match, of which `rows` holds the first */
  total: number;
  rows: string[][];
}

/** The cells of an evaluate folder that kept their map, for the page's filters (the first few hundred). */
export interface EvaluateCellList {
  total: number;
  cells: { dataset: string; model: string; image: string; roi: string; method: string }[];
}

/** One evaluate cell's map, drawn over its image when the server lists that image. */
export interface EvaluateCell {
  dataset: string;
  model: string;
  image: string;
  roi: string;
  method: string;
  width: number;
  height: number;
  /** float32 little-endian, base64 */
  map: string;
  /** the cell's RoI rectangle (attribution.json's roi) */
  rect: { row: number; col: number; height: number; width: number };
  signed: boolean;
  valueUnits: string;
  /** the listed image with the content the cell explains (absent when not listed) */
  match: { image?: string };
}

/** One method option as the page's form shows it: its flag name (without --), type, default, range or choices and help. */
export interface OptionField {
  name: string;
  type: "int" | "number" | "string" | "numbers";
  /** the default as the CLI's help prints it (absent: decided at run time) */
  default?: string;
  min?: number;
  max?: number;
  /** the range in words ("an integer >= 1"), as the CLI's error says it */
  range?: string;
  choices?: readonly string[];
  help: string;
  /** it applies only while this other option has one of these values (it is refused otherwise) */
  appliesWhen?: { option: string; values: readonly string[] };
}
