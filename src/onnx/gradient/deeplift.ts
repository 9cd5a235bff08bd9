/**
 * DeepLIFT's rescale, product and max rules as the op rules use them: multipliers from the actual and
 * reference passes. Under the gradient and guided rules they reduce to the gradient.
 */
import { type Ctx, g0 } from "./context.js";

/** Where |x - x_ref| is at most this, DeepLIFT's secant falls back to the derivative. */
export const DEEPLIFT_EPS = 1e-5;

/** For products in DeepLIFT: the mean of a factor's actual and reference values (exact product rule). */
export function factor(c: Ctx, t: string): string {
  const r = c.ref(t);
  if (c.rule !== "deeplift" || r === t) return t;
  return c.e.mul(c.e.op1("Add", [t, r]), c.e.scalar(0.5));
}

/** DeepLIFT: `num` / (x - x_ref) where x moved, `fallback` (the derivative's term) elsewhere. */
export function perDelta(c: Ctx, x: string, num: string, fallback: string): string {
  const e = c.e;
  const dx = e.op1("Sub", [x, c.ref(x)]);
  const moved = e.op1("Greater", [e.op1("Abs", [dx]), e.scalar(DEEPLIFT_EPS)]);
  const safe = e.op1("Where", [moved, dx, e.scalar(1)]);
  return e.op1("Where", [moved, e.op1("Div", [num, safe]), fallback]);
}

/** DeepLIFT multiplier of y = f(x): secant where x moved, derivative `d` elsewhere. */
export function rescale(c: Ctx, x: string, y: string, d: string): string {
  return perDelta(c, x, c.e.op1("Sub", [y, c.ref(y)]), d);
}

/** Sends per-output values to the arg-max (arg-min) positions of the actual (ref = false) or reference pass. */
export type Route = (values: string, ref: boolean) => string;

/**
 * The backward pass of a max-like op (MaxPool, GlobalMaxPool, ReduceMax/Min, Max/Min), for input x:
 * the gradient routes g to the actual argmax. DeepLIFT's max rule (as Captum's) splits
 * y - y_ref = (top - y_ref) + (y - top), top = max(y, y_ref) (min for Min ops): the first part goes to the
 * actual argmax, the second to the reference argmax, each divided by x - x_ref there. Either part is
 * nonzero only where its argmax moved, so the contributions sum to the output's delta exactly.
 */
export function maxLike(c: Ctx, top: "Max" | "Min"): (x: string, route: Route) => string {
  const e = c.e;
  const g = g0(c);
  if (c.rule !== "deeplift") return (_x, route) => route(g, false);
  const y = c.node.output[0];
  const t = e.op1(top, [y, c.ref(y)]);
  const toActual = e.mul(g, e.op1("Sub", [t, c.ref(y)]));
  const toRef = e.mul(g, e.op1("Sub", [y, t]));
  return (x, route) => perDelta(c, x, e.op1("Add", [route(toActual, false), route(toRef, true)]), route(g, false));
}

/** Values for the actual (ref = false) and reference passes, each built on first use only. */
export function perPass<T>(build: (ref: boolean) => T): (ref: boolean) => T {
  const memo = new Map<boolean, T>();
  return (ref) => (memo.has(ref) ? memo.get(ref)! : memo.set(ref, build(ref)).get(ref)!);
}
