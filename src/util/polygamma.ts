/** Digamma and trigamma functions, and the inverse of trigamma, for moderated variances. */

/** ψ(x) for x > 0: recurrence up to x >= 10, then the asymptotic series (error < 1e-12). */
export function digamma(x: number): number {
  let r = 0;
  while (x < 10) {
    r -= 1 / x;
    x += 1;
  }
  const f = 1 / (x * x);
  return r + Math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))));
}

/** ψ'(x) for x > 0, the same way. */
export function trigamma(x: number): number {
  let r = 0;
  while (x < 10) {
    r += 1 / (x * x);
    x += 1;
  }
  const f = 1 / (x * x);
  return r + 1 / x + f / 2 + (f / x) * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f * (1 / 30 - (5 / 66) * f))));
}

/** ψ''(x) for x > 0, the same way. */
export function tetragamma(x: number): number {
  let r = 0;
  while (x < 10) {
    r -= 2 / (x * x * x);
    x += 1;
  }
  const f = 1 / (x * x);
  return r - f * (1 + 1 / x + f * (0.5 - f * (1 / 6 - f * (1 / 6 - f * (3 / 10 - (5 / 6) * f)))));
}

/** The x > 0 with ψ'(x) = y (y > 0), by Newton's method as in Smyth (2004, limma's trigammaInverse). */
export function trigammaInverse(y: number): number {
  if (!(y > 0)) return Number.NaN;
  if (y > 1e7) return 1 / Math.sqrt(y);
  if (y < 1e-6) return 1 / y;
  let x = 0.5 + 1 / y;
  for (let i = 0; i < 50; i++) {
    const tri = trigamma(x);
    const dif = (tri * (1 - tri / y)) / tetragamma(x);
    x += dif;
    if (-dif / x < 1e-8) break;
  }
  return x;
}
