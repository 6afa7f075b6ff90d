import { measure } from 'mitata'
import { MICRO } from './env'

/** One variant of a micro benchmark: a name and the operation (sync or async) to time. */
export interface Variant {
  name: string
  fn: () => unknown
}

/** What one variant measured. */
export interface Timing {
  name: string
  /** Median time of one operation in the best round, ns. */
  ns: number
  /** Mean time of one operation in that round, ns (hurt more by GC pauses and a busy machine). */
  avgNs: number
  /** Operations per second at the median. */
  opsPerSec: number
}

/**
 * Times every variant with mitata, in `MICRO.rounds` interleaved rounds (A B C A B C ...), and
 * keeps each variant's best round. Interleaving and best-of-rounds matter on a shared machine:
 * load from other processes only ever adds time, and it drifts, so peers timed back to back in
 * the same round see the same machine.
 */
export async function timeVariants(variants: Variant[]): Promise<Timing[]> {
  const best = new Map<string, Timing>()
  for (let round = 0; round < MICRO.rounds; round++) {
    for (const v of variants) {
      const stats = await measure(v.fn, { min_cpu_time: MICRO.minCpuTimeNs })
      const previous = best.get(v.name)
      if (previous === undefined || stats.p50 < previous.ns) {
        best.set(v.name, { name: v.name, ns: stats.p50, avgNs: stats.avg, opsPerSec: 1e9 / stats.p50 })
      }
    }
  }
  return variants.map((v) => best.get(v.name)!)
}

/** `1234567` -> `"1.23M"`, for ops/s columns. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`
  return perSecond.toFixed(0)
}

/** Nanoseconds as `"850 ns"`, `"12.3 µs"` or `"1.50 ms"`. */
export function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e4) return `${(ns / 1e3).toFixed(1)} µs`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(0)} ns`
}

/** A ratio as `"3.10x"`. */
export function formatRatio(ratio: number): string {
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}x`
}

/** Percentile `p` (0..100) of an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}
