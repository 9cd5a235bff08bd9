/** A self-contained HTML page: inline CSS, PNGs as data URIs, no scripts, no network. Also CSV. */
import { esc } from "../util/xml.js";

export function table(headers: string[], rows: (string | number)[][], opts: { numeric?: boolean } = {}): string {
  const cell = (v: string | number) => `<td${typeof v === "number" || opts.numeric ? ' class="n"' : ""}>${typeof v === "number" ? fmt(v) : v}</td>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("")}</tbody></table>`;
}

export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v !== 0 && Math.abs(v) < 10 ** -digits) return v.toExponential(1);
  return Number(v.toFixed(digits)).toString();
}

export function pngImg(png: Buffer, alt: string): string {
  return `<img alt="${esc(alt)}" src="data:image/png;base64,${png.toString("base64")}"/>`;
}

export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}
td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:0.4em 0}
code,pre{background:#f6f6f6;padding:1px 4px}
pre{padding:0.6em;overflow-x:auto}
.small{font-size:12px;color:#555}
</style></head><body>
<h1>${esc(title)}</h1>
${body}
</body></html>
`;
}

/**
 * Reads back a table csv() wrote with no quoted field (the benchmark's ids and metric names hold no
 * comma or quote): each row as a record by column name. A quoted or ragged line is refused.
 */
export function csvRecords(text: string): Record<string, string>[] {
  const [head, ...lines] = text.trimEnd().split("\n");
  const cols = head.split(",");
  return lines.map((line, i) => {
    const v = line.split(",");
    if (v.length !== cols.length || line.includes('"'))
      throw new Error(`line ${i + 2} of the table has quoted or missing fields (${v.length} fields, ${cols.length} columns)`);
    return Object.fromEntries(cols.map((c, k) => [c, v[k]]));
  });
}

export function csv(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const q = (v: string | number | null | undefined) => {
    if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return "";
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return `${[headers.map(q).join(","), ...rows.map((r) => r.map(q).join(","))].join("\n")}\n`;
}
