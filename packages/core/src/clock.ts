/**
 * A source of the current time in milliseconds since the Unix epoch.
 *
 * Every time-dependent part of the toolkit takes one, so tests move time by hand instead of
 * sleeping, and a deployment can substitute a server-synchronised clock.
 */
export interface Clock {
  /** The current time in ms since the Unix epoch. */
  now(): number
}

/**
 * The default clock: the host's wall clock. This is the only place in `@tenant/core` that reads it.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
}

/**
 * A clock that only moves when told to. For tests and simulations.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(Date.UTC(2026, 0, 1))
 * const quotas = new InMemoryQuotaManager(configs, { clock })
 * clock.advance(60_000) // the next minute window
 * ```
 */
export class ManualClock implements Clock {
  #now: number

  /** @param start ms since the epoch. @default 0 */
  constructor(start = 0) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  /** Moves the clock forward (or back, with a negative value) by `ms`. */
  advance(ms: number): void {
    this.#now += ms
  }

  /** Sets the clock to an absolute time in ms since the epoch. */
  set(ms: number): void {
    this.#now = ms
  }
}

/**
 * The longest delay a timer keeps, in ms (2^31 - 1, about 24.8 days): `setTimeout` in Node, Bun,
 * Deno, browsers and Workers runs a longer one after about 1 ms instead. Options that become a
 * timer's delay (the stages' and stores' `timeoutMs`) are refused above it at construction, so a
 * generous timeout never turns into one that fires at once.
 *
 * @example
 * ```ts
 * if (timeoutMs > MAX_TIMER_MS) throw invalidOption('timeoutMs', `must be at most ${MAX_TIMER_MS}`)
 * ```
 */
export const MAX_TIMER_MS = 2 ** 31 - 1
