/**
 * Plain decimal numbers from user text (flags, RoI lists). Number() alone also reads "0x10" as 16,
 * "0b11" as 3, "Infinity", and "" or " " as 0, so a typo would become a valid-looking setting.
 */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const INTEGER = /^[+-]?\d+$/;

/** A finite decimal number ("12", "-0.5", ".5", "1e-3"), else undefined. */
export function decimal(text: string): number | undefined {
  const t = text.trim();
  if (!DECIMAL.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** A whole number written with digits only ("16", "-3"; not "1e1" or "16.0"), else undefined. */
export function decimalInteger(text: string): number | undefined {
  const t = text.trim();
  if (!INTEGER.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}
