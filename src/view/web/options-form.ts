/**
 * A method's options as a form: one field per option the server lists (from the method declarations the
 * CLI reads), empty = the default. The browser's own checks (range, integer step) mark a field at once;
 * the server's check, the CLI's, gives the line shown under the form.
 */

import type { OptionField } from "../api-types.js";

/** The form of `method`'s options; `changed` runs on every edit. */
export function methodForm(method: string, fields: OptionField[], changed: () => void): HTMLElement {
  const box = document.createElement("details");
  box.open = true;
  box.dataset.method = method;
  box.className = "method-options";
  box.append(Object.assign(document.createElement("summary"), { textContent: `${method} options` }));
  const grid = document.createElement("div");
  for (const f of fields) {
    const input = f.choices ? choiceInput(f) : numberOrText(f);
    input.id = `opt-${method}-${f.name}`;
    input.dataset.option = f.name;
    if (f.type === "int" || f.type === "number") input.dataset.numeric = "1";
    input.oninput = changed;
    const when = f.appliesWhen ? ` Only with --${f.appliesWhen.option} ${f.appliesWhen.values.join(" or ")}.` : "";
    const label = Object.assign(document.createElement("label"), {
      title: `--${f.name}: ${f.help}${f.range ? ` (${f.range})` : ""}.${when}`,
    });
    label.append(f.name, input);
    grid.append(label);
  }
  box.append(grid, Object.assign(document.createElement("output"), { className: "error" }));
  return box;
}

function choiceInput(f: OptionField): HTMLSelectElement {
  const s = document.createElement("select");
  s.append(new Option(`default${f.default === undefined ? "" : ` (${f.default})`}`, ""), ...f.choices!.map((c) => new Option(c, c)));
  return s;
}

function numberOrText(f: OptionField): HTMLInputElement {
  const numeric = f.type === "int" || f.type === "number";
  const i = Object.assign(document.createElement("input"), {
    type: numeric ? "number" : "text",
    placeholder: f.default ?? "auto",
    spellcheck: false,
  });
  if (numeric) i.step = f.type === "int" ? "1" : "any";
  if (numeric && f.min !== undefined) i.min = String(f.min);
  if (numeric && f.max !== undefined) i.max = String(f.max);
  return i;
}
