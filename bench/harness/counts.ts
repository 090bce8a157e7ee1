/**
 * Load counts: what a load generator saw (sent, answered, failures by kind,
 * latencies, responses per serving pid), and the figures drawn from them.
 */

/** Counts of one load. */
export interface LoadCounts {
  /** Requests sent (or, for autocannon, written on a connection). */
  sent: number;
  /** 2xx responses with the expected body. */
  ok: number;
  non2xx: number;
  /** Failures by kind (ECONNRESET, EPIPE, ECONNREFUSED, timeout, hang up, ...). */
  errors: Record<string, number>;
  /** Latencies of answered requests, ms. */
  latencies: number[];
  /** Responses per serving pid (from the body). */
  byPid: Map<number, number>;
}

export function errorTotal(c: { errors: Record<string, number> }): number {
  return Object.values(c.errors).reduce((a, b) => a + b, 0);
}

/** BODY: what the example server answers, with the pid that served. */
export const BODY = /^hello from pid (\d+) \(generation \d+\)\n$/;


export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
