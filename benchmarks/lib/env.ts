// Run-wide settings read from the environment once, so every section agrees on them.

/** `BENCH_QUICK=1`: short runs for building and debugging; the numbers are not for publishing. */
export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true'

/**
 * `BENCH_ONLY=micro,redis`: run only the named sections (`micro`, `redis`, `http`, `memory`).
 * Unset: all of them.
 */
export const ONLY: ReadonlySet<string> | undefined = process.env.BENCH_ONLY
  ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim()))
  : undefined

/** Whether the section `name` runs in this invocation. */
export function enabled(name: string): boolean {
  return ONLY === undefined || ONLY.has(name)
}

/** Where the report goes: `BENCH_OUT`, default `BENCHMARKS.md` at the repository root. */
export const OUT = process.env.BENCH_OUT ?? new URL('../../BENCHMARKS.md', import.meta.url).pathname

/** Redis used by the Redis and HTTP sections: `BENCH_REDIS_URL`, then `TEST_REDIS_URL`, then local. */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Whether the packages are loaded from their TypeScript sources (tsx + `@tenant/source`) or `dist/`. */
export const FROM_SOURCE = import.meta.resolve('@tenant/core').includes('/src/')

/**
 * Micro benchmark budget: mitata's minimum CPU time per measurement (ns) and how many interleaved
 * rounds each group runs (the best round's median is reported).
 */
export const MICRO = QUICK ? { minCpuTimeNs: 60e6, rounds: 1 } : { minCpuTimeNs: 400e6, rounds: 3 }

/** Seconds per Redis load point (each peer x concurrency x round), and interleaved rounds. */
export const REDIS_SECONDS = QUICK ? 0.5 : 2
export const REDIS_ROUNDS = QUICK ? 1 : 2

/**
 * Seconds of autocannon per HTTP variant and round, and interleaved rounds. Many short rounds
 * rather than a few long ones: on this shared machine a server's CPU per request moves between
 * two levels for stretches of seconds (bare Hono measured 33 to 66 µs in one run), and each row
 * keeps its least round, so every variant needs several chances at the quiet level.
 */
export const HTTP_SECONDS = QUICK ? 1 : 1.5
export const HTTP_ROUNDS = QUICK ? 1 : 6

/**
 * Warm-up of each HTTP server before any measurement: until it answered `requests` requests or
 * `maxSeconds` passed. The JIT needs thousands of requests to settle (CPU per request of the full
 * chain falls about 5x over its first 8,000 requests), so the warm-up counts requests, not time.
 */
export const HTTP_WARMUP = QUICK ? { requests: 3_000, maxSeconds: 2 } : { requests: 15_000, maxSeconds: 6 }

/** The in-process cost table of the HTTP section: interleaved rounds, and requests per round. */
export const IN_PROCESS = QUICK ? { rounds: 2, perRound: 5_000 } : { rounds: 10, perRound: 20_000 }

/** Tenant counts of the memory section. */
export const MEMORY_TENANTS = QUICK ? [1e4, 1e5] : [1e4, 1e5, 1e6]
