import {
  calendarWindow,
  ManualClock,
  type QuotaConfig,
  type QuotaCost,
  type QuotaManager,
  type QuotaProvider,
  type QuotaWindow,
  type RateLimitConfig,
  type RateLimitProvider,
  TenantNotFoundError,
} from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { testQuotaSubjects } from './quota-subjects'

/**
 * A tenant configuration source the conformance suites fill: `setQuota` / `setRateLimit` per
 * tenant; an id never set throws `TenantNotFoundError`, like every `ConfigManager`.
 *
 * @example
 * ```ts
 * const provider = new TestConfigProvider()
 * provider.setQuota('acme', { limits: [{ window: 'minute', requests: 2 }] })
 * provider.setRateLimit('acme', { requestsPerSecond: 1, burst: 1 })
 * const quotas = new MyQuotaManager(provider, { clock })
 * ```
 */
export class TestConfigProvider implements QuotaProvider, RateLimitProvider {
  readonly #quotas = new Map<string, QuotaConfig>()
  readonly #rateLimits = new Map<string, RateLimitConfig | null>()

  /** Creates or replaces a tenant's quota. */
  setQuota(tenantId: string, quota: QuotaConfig): void {
    this.#quotas.set(tenantId, JSON.parse(JSON.stringify(quota)) as QuotaConfig)
  }

  /** Creates or replaces a tenant's rate limit (`null`: the tenant has none). */
  setRateLimit(tenantId: string, rateLimit: RateLimitConfig | null): void {
    this.#rateLimits.set(tenantId, rateLimit === null ? null : { ...rateLimit })
  }

  async quotaConfig(tenantId: string): Promise<QuotaConfig> {
    const quota = this.#quotas.get(tenantId)
    if (quota === undefined) throw new TenantNotFoundError(tenantId)
    return JSON.parse(JSON.stringify(quota)) as QuotaConfig
  }

  async rateLimitConfig(tenantId: string): Promise<RateLimitConfig | null> {
    if (!this.#rateLimits.has(tenantId)) throw new TenantNotFoundError(tenantId)
    const rateLimit = this.#rateLimits.get(tenantId)!
    return rateLimit === null ? null : { ...rateLimit }
  }
}

/** What a {@link testQuotaManager} / `testRateLimiter` factory receives. */
export interface ManagerFactoryContext {
  /** Tenant configs; the suite fills it before each call. */
  provider: TestConfigProvider
  /** The only time the manager may use. The suite moves it forward, never back. */
  clock: ManualClock
}

/** Builds the quota manager under test; called once per test. */
export type QuotaManagerFactory = (context: ManagerFactoryContext) => QuotaManager | Promise<QuotaManager>

/** Options of {@link testQuotaManager}. */
export interface QuotaManagerSuiteOptions {
  /**
   * The window semantics the manager implements: `'fixed'` windows reset at UTC calendar
   * boundaries; `'sliding'` windows let usage age out bucket by bucket.
   */
  algorithm: 'fixed' | 'sliding'
  /**
   * Per-test timeout in ms (networked stores: Redis, Durable Objects).
   * @default 5000
   */
  timeout?: number
  /**
   * Also run the subject cases ({@link testQuotaSubjects}). Only a store that does not support
   * `QuotaCost.subject` yet turns them off.
   * @default true
   */
  subjects?: boolean
}

let idCounter = 0

/**
 * A fresh tenant id per test, so stores that persist between runs (Redis, DOs) never see old state.
 *
 * @example
 * ```ts
 * const tenantId = randomTenantId('redis') // 'redis-k3j9x0qa-1': never seen by an earlier run
 * ```
 */
export function randomTenantId(prefix = 'suite'): string {
  idCounter += 1
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}-${idCounter.toString(36)}`
}

/**
 * Resolves the error a promise rejects with; fails when it resolves.
 *
 * @example
 * ```ts
 * const error = await rejectionOf(quotas.consume('acme', { tokens: -1 }))
 * expect(isTenantError(error) && error.code).toBe('invalid_cost')
 * ```
 */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject')
}

/** What {@link expectExactRetry} needs of a decision: quota and rate-limit decisions both qualify. */
export interface RetryDecision {
  allowed: boolean
  retryAfterMs: number
}

/**
 * Asserts that a denial's `retryAfterMs` is exact: `attempt` (the same request again) is denied
 * 1 ms before `now + retryAfterMs`, with 1 ms left to wait, and admitted at it. Moves `clock`.
 *
 * @example
 * ```ts
 * const denied = await quotas.consume(tenantId)
 * await expectExactRetry(clock, denied, () => quotas.consume(tenantId))
 * ```
 */
export async function expectExactRetry(
  clock: ManualClock,
  denial: RetryDecision,
  attempt: () => Promise<RetryDecision>,
): Promise<void> {
  expect(denial.allowed).toBe(false)
  expect(Number.isInteger(denial.retryAfterMs)).toBe(true)
  expect(denial.retryAfterMs).toBeGreaterThan(0)
  const at = clock.now() + denial.retryAfterMs
  clock.set(at - 1)
  const early = await attempt()
  expect(early.allowed).toBe(false)
  expect(early.retryAfterMs).toBe(1)
  clock.set(at)
  expect((await attempt()).allowed).toBe(true)
}

const MINUTE = 60_000
const HOUR = 60 * MINUTE
/** 2030-03-14T09:26:00.000Z: on a minute boundary, far from any hour, day or month boundary. */
const T0 = Date.UTC(2030, 2, 14, 9, 26)

/**
 * The conformance suite every `QuotaManager` runs (in-memory fixed and sliding, Redis, Durable
 * Objects): admission, both dimensions, unlimited dimensions, window reset or ageing, the exact
 * `retryAfterMs`, all-or-nothing over several windows, `adjust`, `peek`, bad costs, unknown
 * tenants and 1,000 concurrent consumes. Each test uses new random tenant ids.
 *
 * @example
 * ```ts
 * import { testQuotaManager } from '@tenant/core/testing'
 * testQuotaManager('RedisQuotaManager', ({ provider, clock }) =>
 *   new RedisQuotaManager(provider, { redis, clock, prefix: `test:${run}:` }), { algorithm: 'fixed', timeout: 20_000 })
 * ```
 */
export function testQuotaManager(
  name: string,
  factory: QuotaManagerFactory,
  options: QuotaManagerSuiteOptions,
): void {
  const timeout = options.timeout ?? 5_000
  const fixed = options.algorithm === 'fixed'

  async function setup(quota: QuotaConfig, start = T0) {
    const clock = new ManualClock(start)
    const provider = new TestConfigProvider()
    const id = randomTenantId('q')
    provider.setQuota(id, quota)
    const manager = await factory({ provider, clock })
    const used = async (window: QuotaWindow = 'minute') =>
      (await manager.peek(id)).windows.find((w) => w.window === window)?.used
    return { clock, provider, id, manager, used }
  }

  /** Consumes `cost` until a denial; returns the admitted count and the denial. */
  async function exhaust(manager: QuotaManager, id: string, cost: QuotaCost, max = 1000) {
    for (let admitted = 0; admitted < max; admitted++) {
      const decision = await manager.consume(id, cost)
      if (!decision.allowed) return { admitted, denial: decision }
    }
    throw new Error(`still admitted after ${max} requests`)
  }

  describe(`${name} (QuotaManager conformance, ${options.algorithm} windows)`, () => {
    it(
      'admits a request within every limit and reports what is left',
      async () => {
        const { manager, id } = await setup({ limits: [{ window: 'minute', requests: 10, tokens: 1000 }] })
        const decision = await manager.consume(id, { tokens: 100 })
        expect(decision).toMatchObject({
          allowed: true,
          remaining: { requests: 9, tokens: 900 },
          limit: { requests: 10, tokens: 1000 },
          retryAfterMs: 0,
        })
        expect(decision.reason).toBeUndefined()
        expect(decision.windows).toHaveLength(1)
        expect(decision.windows[0]).toMatchObject({ window: 'minute', used: { requests: 1, tokens: 100 } })
        expect(decision.resetAt).toBeGreaterThan(T0)
        // The default cost is one request and no tokens.
        expect(await manager.consume(id)).toMatchObject({
          allowed: true,
          remaining: { requests: 8, tokens: 900 },
        })
      },
      timeout,
    )

    it(
      'denies the request after the request limit, naming the window and dimension',
      async () => {
        const { manager, id } = await setup({ limits: [{ window: 'minute', requests: 3 }] })
        const remaining: (number | undefined)[] = []
        for (let i = 0; i < 3; i++) remaining.push((await manager.consume(id)).remaining.requests)
        expect(remaining).toEqual([2, 1, 0])
        const denial = await manager.consume(id)
        expect(denial).toMatchObject({ allowed: false, remaining: { requests: 0 }, limit: { requests: 3 } })
        expect(denial.reason).toMatch(/minute/)
        expect(denial.reason).toMatch(/requests/)
        expect(denial.retryAfterMs).toBeGreaterThan(0)
        expect(denial.resetAt).toBeGreaterThanOrEqual(T0 + denial.retryAfterMs)
      },
      timeout,
    )

    it(
      'denies a request whose tokens do not fit, even with tokens left (the cost is part of the check)',
      async () => {
        const { manager, id, used } = await setup({ limits: [{ window: 'minute', tokens: 1000 }] })
        expect((await manager.consume(id, { tokens: 600 })).allowed).toBe(true)
        const denial = await manager.consume(id, { tokens: 500 })
        expect(denial).toMatchObject({ allowed: false, remaining: { tokens: 400 } })
        expect(denial.reason).toMatch(/tokens/)
        expect(await manager.consume(id, { tokens: 400 })).toMatchObject({
          allowed: true,
          remaining: { tokens: 0 },
        })
        expect((await manager.consume(id, { tokens: 1 })).allowed).toBe(false)
        expect(await used()).toEqual({ requests: 2, tokens: 1000 })
      },
      timeout,
    )

    it(
      'reset forgets every window of the tenant and nothing of another tenant',
      async () => {
        const quota: QuotaConfig = {
          limits: [
            { window: 'minute', requests: 2, tokens: 100 },
            { window: 'day', requests: 10 },
          ],
        }
        const { manager, id, provider, used } = await setup(quota)
        const other = randomTenantId('q')
        provider.setQuota(other, quota)
        expect(typeof manager.reset).toBe('function')
        await manager.consume(id, { tokens: 50 })
        await manager.consume(id)
        await manager.consume(other, { tokens: 10 })
        expect((await manager.consume(id)).allowed).toBe(false)
        await manager.reset!(id)
        expect(await used('minute')).toEqual({ requests: 0, tokens: 0 })
        expect(await used('day')).toEqual({ requests: 0, tokens: 0 })
        expect(await manager.consume(id, { tokens: 100 })).toMatchObject({
          allowed: true,
          remaining: { requests: 1, tokens: 0 },
        })
        const theirs = (await manager.peek(other)).windows.find((w) => w.window === 'minute')?.used
        expect(theirs).toEqual({ requests: 1, tokens: 10 })
        // Idempotent, and fine for a tenant with no state.
        await manager.reset!(id)
        await manager.reset!(randomTenantId('q'))
        await expect(manager.reset!('not valid!')).rejects.toMatchObject({ code: 'tenant_invalid_id' })
      },
      timeout,
    )

    it(
      'a denied request charges nothing, in any dimension',
      async () => {
        const { manager, id, used } = await setup({
          limits: [{ window: 'minute', requests: 5, tokens: 100 }],
        })
        await manager.consume(id, { tokens: 90 })
        for (let i = 0; i < 3; i++) expect((await manager.consume(id, { tokens: 20 })).allowed).toBe(false)
        expect(await used()).toEqual({ requests: 1, tokens: 90 })
        expect((await manager.consume(id, { tokens: 10 })).allowed).toBe(true)
      },
      timeout,
    )

    it(
      'checks every window and charges none when one refuses (all-or-nothing)',
      async () => {
        const { manager, id, used } = await setup({
          limits: [
            { window: 'minute', requests: 10, tokens: 1000 },
            { window: 'hour', requests: 3, tokens: 500 },
          ],
        })
        expect((await manager.consume(id, { tokens: 400 })).allowed).toBe(true)
        // Fits the minute window (600 left) but not the hour (100 left).
        const byTokens = await manager.consume(id, { tokens: 200 })
        expect(byTokens.allowed).toBe(false)
        expect(byTokens.reason).toMatch(/hour/)
        expect(byTokens.reason).not.toMatch(/minute/)
        expect(await used('minute')).toEqual({ requests: 1, tokens: 400 })
        expect(await used('hour')).toEqual({ requests: 1, tokens: 400 })

        await manager.consume(id)
        await manager.consume(id)
        const byRequests = await manager.consume(id)
        expect(byRequests.allowed).toBe(false)
        expect(byRequests.reason).toMatch(/hour requests/)
        expect(await used('minute')).toEqual({ requests: 3, tokens: 400 })
        // The most constraining window is reported per dimension.
        expect(byRequests.remaining).toEqual({ requests: 0, tokens: 100 })
        expect(byRequests.limit).toEqual({ requests: 3, tokens: 500 })
        expect(byRequests.windows.map((w) => w.window)).toEqual(['minute', 'hour'])
      },
      timeout,
    )

    if (fixed) {
      it.each([
        ['minute', Date.UTC(2030, 2, 14, 9, 26, 59, 999)],
        ['hour', Date.UTC(2030, 2, 14, 9, 59, 59, 999)],
        ['day', Date.UTC(2030, 2, 14, 23, 59, 59, 999)],
        ['month', Date.UTC(2030, 1, 28, 23, 59, 59, 999)],
        ['month', Date.UTC(2032, 1, 29, 23, 59, 59, 999)],
        ['month', Date.UTC(2030, 11, 31, 23, 59, 59, 999)],
      ] as const)(
        'a %s window resets exactly at the UTC calendar boundary (from %d)',
        async (window, lastMs) => {
          const start = calendarWindow(window, lastMs).start
          const { manager, id, clock } = await setup({ limits: [{ window, requests: 2, tokens: 50 }] }, start)
          await manager.consume(id, { tokens: 30 })
          clock.set(lastMs)
          await manager.consume(id, { tokens: 20 })
          const denial = await manager.consume(id)
          expect(denial.allowed).toBe(false)
          expect(denial.retryAfterMs).toBe(1)
          expect(denial.resetAt).toBe(lastMs + 1)
          clock.set(lastMs + 1)
          const fresh = await manager.consume(id, { tokens: 50 })
          expect(fresh).toMatchObject({ allowed: true, remaining: { requests: 1, tokens: 0 } })
          expect(fresh.windows[0]!.resetAt).toBe(calendarWindow(window, lastMs + 1).end)
        },
        timeout,
      )

      it(
        'does not reset inside a window, and the retry time is the window end',
        async () => {
          const { manager, id, clock } = await setup({ limits: [{ window: 'hour', requests: 1 }] })
          await manager.consume(id)
          clock.advance(20 * MINUTE)
          const denial = await manager.consume(id)
          expect(denial.allowed).toBe(false)
          expect(denial.retryAfterMs).toBe(Date.UTC(2030, 2, 14, 10) - clock.now())
          expect(denial.resetAt).toBe(Date.UTC(2030, 2, 14, 10))
        },
        timeout,
      )
    } else {
      it(
        'lets usage age out: nothing before a full window has passed, everything after two',
        async () => {
          const { manager, id, clock, used } = await setup({
            limits: [{ window: 'minute', requests: 4, tokens: 400 }],
          })
          for (let i = 0; i < 4; i++) await manager.consume(id, { tokens: 100 })
          clock.set(T0 + MINUTE - 1)
          expect((await manager.consume(id, { requests: 0, tokens: 1 })).allowed).toBe(false)
          expect((await manager.consume(id, { requests: 1, tokens: 0 })).allowed).toBe(false)
          clock.set(T0 + 2 * MINUTE)
          // Both dimensions are free again: ageing out frees requests and tokens alike.
          expect(await used()).toEqual({ requests: 0, tokens: 0 })
          expect(await manager.consume(id, { tokens: 400 })).toMatchObject({
            allowed: true,
            remaining: { requests: 3, tokens: 0 },
          })
        },
        timeout,
      )

      it(
        'gives capacity back gradually, not all at once',
        async () => {
          const { manager, id, clock } = await setup({ limits: [{ window: 'hour', requests: 100 }] })
          await manager.consume(id, { requests: 100 })
          clock.set(T0 + 30 * MINUTE)
          const denial = await manager.consume(id)
          expect(denial.allowed).toBe(false)
          clock.advance(denial.retryAfterMs)
          // The first moment one request fits, the rest of the hour's usage is still counted.
          const first = (await manager.peek(id)).windows[0]!.remaining.requests!
          expect(first).toBeGreaterThanOrEqual(1)
          expect(first).toBeLessThan(100)
          clock.set(T0 + 2 * HOUR)
          expect((await manager.peek(id)).windows[0]!.remaining.requests).toBe(100)
        },
        timeout,
      )
    }

    it(
      'retryAfterMs is exact for requests: denied 1 ms before, admitted at it',
      async () => {
        const { manager, id, clock } = await setup({ limits: [{ window: 'minute', requests: 5 }] })
        for (const offset of [0, 7_000, 19_500, 41_000]) {
          clock.set(T0 + offset)
          await manager.consume(id)
        }
        clock.set(T0 + 50_000)
        const { denial } = await exhaust(manager, id, {})
        await expectExactRetry(clock, denial, () => manager.consume(id, {}))
        if (fixed) expect(clock.now()).toBe(T0 + MINUTE)
      },
      timeout,
    )

    it(
      'retryAfterMs is exact for tokens across several windows and spread-out usage',
      async () => {
        const { manager, id, clock } = await setup({
          limits: [
            { window: 'minute', tokens: 1000 },
            { window: 'hour', tokens: 3000 },
          ],
        })
        const spread = [
          [0, 300],
          [9_000, 250],
          [23_000, 200],
          [38_000, 150],
          [52_000, 100],
        ] as const
        for (const [offset, tokens] of spread) {
          clock.set(T0 + offset)
          expect((await manager.consume(id, { tokens })).allowed).toBe(true)
        }
        for (const probe of [55_000, 61_000, 75_500]) {
          clock.set(Math.max(clock.now(), T0 + probe))
          const { denial } = await exhaust(manager, id, { tokens: 180 })
          await expectExactRetry(clock, denial, () => manager.consume(id, { tokens: 180 }))
        }
        // The hour window refuses last; its retry time is exact as well.
        clock.advance(1)
        const { denial } = await exhaust(manager, id, { tokens: 700 })
        expect(denial.reason).toMatch(/hour|minute/)
        await expectExactRetry(clock, denial, () => manager.consume(id, { tokens: 700 }))
      },
      timeout,
    )

    it(
      'a request whose cost exceeds a limit outright is denied with a finite retry and charges nothing',
      async () => {
        const { manager, id, clock, used } = await setup({
          limits: [{ window: 'minute', requests: 10, tokens: 100 }],
        })
        await manager.consume(id, { tokens: 10 })
        const denial = await manager.consume(id, { tokens: 150 })
        expect(denial.allowed).toBe(false)
        expect(denial.reason).toMatch(/never/)
        expect(Number.isFinite(denial.retryAfterMs)).toBe(true)
        expect(denial.retryAfterMs).toBeGreaterThan(0)
        expect(denial.retryAfterMs).toBeLessThanOrEqual(2 * MINUTE)
        expect(await used()).toEqual({ requests: 1, tokens: 10 })
        clock.advance(denial.retryAfterMs)
        const again = await manager.consume(id, { tokens: 150 })
        expect(again.allowed).toBe(false)
        expect(again.reason).toMatch(/never/)
      },
      timeout,
    )

    it(
      'a tenant without limits, or with limits of 0, is unlimited and reports no remaining',
      async () => {
        for (const quota of [
          { limits: [] },
          { limits: [{ window: 'minute' as const, requests: 0, tokens: 0 }] },
          { limits: [{ window: 'day' as const }] },
        ]) {
          const { manager, id } = await setup(quota)
          for (let i = 0; i < 50; i++) {
            const decision = await manager.consume(id, { requests: 1000, tokens: 1_000_000_000 })
            expect(decision).toMatchObject({ allowed: true, remaining: {}, limit: {}, retryAfterMs: 0 })
          }
        }
      },
      timeout,
    )

    it(
      'tokens-only: requests are unlimited and absent from remaining and limit',
      async () => {
        const { manager, id } = await setup({ limits: [{ window: 'minute', requests: 0, tokens: 100 }] })
        for (let i = 0; i < 200; i++) expect((await manager.consume(id)).allowed).toBe(true)
        const decision = await manager.consume(id, { tokens: 60 })
        expect(decision.remaining).toEqual({ tokens: 40 })
        expect(decision.limit).toEqual({ tokens: 100 })
        expect(decision.windows[0]!.used.requests).toBe(201)
        expect((await manager.consume(id, { tokens: 41 })).allowed).toBe(false)
      },
      timeout,
    )

    it(
      'requests-only: tokens are unlimited and absent from remaining and limit',
      async () => {
        const { manager, id } = await setup({ limits: [{ window: 'minute', requests: 2 }] })
        const decision = await manager.consume(id, { tokens: 5_000_000 })
        expect(decision).toMatchObject({ allowed: true, remaining: { requests: 1 }, limit: { requests: 2 } })
        expect(decision.remaining).not.toHaveProperty('tokens')
        expect(decision.limit).not.toHaveProperty('tokens')
        expect((await manager.consume(id, { tokens: 5_000_000 })).allowed).toBe(true)
        expect((await manager.consume(id, { tokens: 0 })).allowed).toBe(false)
      },
      timeout,
    )

    it(
      'a zero cost is admitted while the window is exactly full, and charges nothing',
      async () => {
        const { manager, id, used } = await setup({ limits: [{ window: 'minute', requests: 1, tokens: 10 }] })
        await manager.consume(id, { tokens: 10 })
        expect((await manager.consume(id, { requests: 0, tokens: 0 })).allowed).toBe(true)
        expect((await manager.consume(id, { requests: 0, tokens: 1 })).allowed).toBe(false)
        expect(await used()).toEqual({ requests: 1, tokens: 10 })
      },
      timeout,
    )

    it(
      'admits exactly the limit out of 1,000 concurrent consumes',
      async () => {
        const { manager, id, used } = await setup({
          limits: [{ window: 'minute', requests: 100, tokens: 1_000_000 }],
        })
        const decisions = await Promise.all(
          Array.from({ length: 1000 }, () => manager.consume(id, { tokens: 7 })),
        )
        expect(decisions.filter((d) => d.allowed)).toHaveLength(100)
        expect(await used()).toEqual({ requests: 100, tokens: 700 })
      },
      timeout * 2,
    )

    it(
      'propagates TenantNotFoundError from the provider for consume, adjust and peek',
      async () => {
        const { manager } = await setup({ limits: [] })
        const unknown = randomTenantId('missing')
        for (const call of [
          () => manager.consume(unknown),
          () => manager.adjust(unknown, { tokens: 5 }),
          () => manager.peek(unknown),
        ]) {
          expect(await rejectionOf(call())).toMatchObject({ code: 'tenant_not_found', status: 404 })
        }
      },
      timeout,
    )

    it(
      'rejects negative, fractional and non-numeric costs with InvalidCostError and charges nothing',
      async () => {
        const { manager, id, used } = await setup({
          limits: [{ window: 'minute', requests: 10, tokens: 100 }],
        })
        await manager.consume(id, { tokens: 50 })
        const bad: unknown[] = [
          { requests: -1 },
          { tokens: -50 },
          { tokens: 1.5 },
          { requests: 0.5 },
          { tokens: Number.NaN },
          { requests: Number.POSITIVE_INFINITY },
          { tokens: '10' },
          { requests: null },
          'ten',
          null,
        ]
        for (const cost of bad) {
          const error = await rejectionOf(manager.consume(id, cost as QuotaCost))
          expect(error).toMatchObject({ code: 'invalid_cost', status: 400 })
        }
        const badDeltas = [
          { tokens: 1.5 },
          { tokens: Number.NaN },
          { tokens: '5' },
          {},
          null,
          { tokens: -5, decidedAt: String(T0) },
          { tokens: -5, decidedAt: Number.NaN },
          { tokens: -5, decidedAt: Number.POSITIVE_INFINITY },
          { tokens: -5, decidedAt: null },
        ]
        for (const delta of badDeltas) {
          const error = await rejectionOf(manager.adjust(id, delta as { tokens: number }))
          expect(error).toMatchObject({ code: 'invalid_cost', status: 400 })
        }
        expect(await used()).toEqual({ requests: 1, tokens: 50 })
      },
      timeout,
    )

    it(
      'adjust charges and refunds tokens in every window, refunds stop at zero, and it never denies',
      async () => {
        const { manager, id, used } = await setup({
          limits: [
            { window: 'minute', tokens: 100 },
            { window: 'day', tokens: 1000 },
          ],
        })
        await manager.consume(id, { tokens: 80 })
        const charged = await manager.adjust(id, { tokens: 70 })
        expect(charged.tenantId).toBe(id)
        expect(charged.windows.map((w) => w.used.tokens)).toEqual([150, 150])
        expect(charged.windows[0]!.remaining).toEqual({ tokens: 0 })
        // Over the limit after the fact: even a request with no tokens is now refused.
        expect((await manager.consume(id, { tokens: 0 })).allowed).toBe(false)
        const refunded = await manager.adjust(id, { tokens: -120 })
        expect(refunded.windows.map((w) => w.used.tokens)).toEqual([30, 30])
        const floored = await manager.adjust(id, { tokens: -1_000_000 })
        expect(floored.windows.map((w) => w.used)).toEqual([
          { requests: 1, tokens: 0 },
          { requests: 1, tokens: 0 },
        ])
        expect((await manager.adjust(id, { tokens: 0 })).windows[0]!.used.tokens).toBe(0)
        expect(await used('day')).toEqual({ requests: 1, tokens: 0 })
        expect((await manager.consume(id, { tokens: 100 })).allowed).toBe(true)
      },
      timeout,
    )

    it(
      "a refund given its admission's decidedAt leaves the windows started since alone",
      async () => {
        const { manager, id, clock, used } = await setup({
          limits: [
            { window: 'minute', tokens: 1000 },
            { window: 'day', tokens: 10_000 },
          ],
        })
        const admitted = await manager.consume(id, { tokens: 300 })
        expect(admitted.decidedAt).toBe(T0)
        // A stream that ran on into another minute, where another request was charged.
        clock.set(T0 + 2 * MINUTE)
        await manager.consume(id, { tokens: 50 })
        const settled = await manager.adjust(id, { tokens: -250, decidedAt: admitted.decidedAt })
        expect(settled.windows.map((w) => [w.window, w.used])).toEqual([
          ['minute', { requests: 1, tokens: 50 }],
          ['day', { requests: 2, tokens: 100 }],
        ])
        expect(await used('minute')).toEqual({ requests: 1, tokens: 50 })
        // However large, such a refund leaves the new minute alone; a charge goes into the current
        // windows whatever decidedAt says.
        await manager.adjust(id, { tokens: -1_000_000, decidedAt: admitted.decidedAt })
        expect(await used('minute')).toEqual({ requests: 1, tokens: 50 })
        await manager.adjust(id, { tokens: 20, decidedAt: admitted.decidedAt })
        expect(await used('minute')).toEqual({ requests: 1, tokens: 70 })
      },
      timeout,
    )

    it(
      'adjust on a tenant with no usage yet charges from zero, and a refund stays at zero',
      async () => {
        const { manager, id } = await setup({ limits: [{ window: 'minute', tokens: 100 }] })
        expect((await manager.adjust(id, { tokens: -10 })).windows[0]!.used).toEqual({
          requests: 0,
          tokens: 0,
        })
        expect((await manager.adjust(id, { tokens: 25 })).windows[0]!.remaining).toEqual({ tokens: 75 })
      },
      timeout,
    )

    it(
      'peek reports every window without consuming',
      async () => {
        const { manager, id } = await setup({
          limits: [
            { window: 'day', requests: 1000 },
            { window: 'minute', requests: 10, tokens: 500 },
          ],
        })
        const empty = await manager.peek(id)
        expect(empty.tenantId).toBe(id)
        expect(empty.windows.map((w) => [w.window, w.used, w.remaining])).toEqual([
          ['minute', { requests: 0, tokens: 0 }, { requests: 10, tokens: 500 }],
          ['day', { requests: 0, tokens: 0 }, { requests: 1000 }],
        ])
        await manager.consume(id, { tokens: 120 })
        const first = await manager.peek(id)
        const second = await manager.peek(id)
        expect(second).toEqual(first)
        expect(first.windows[0]).toMatchObject({
          window: 'minute',
          limit: { requests: 10, tokens: 500 },
          used: { requests: 1, tokens: 120 },
          remaining: { requests: 9, tokens: 380 },
        })
        for (const w of first.windows) expect(w.resetAt).toBeGreaterThan(T0)
        if (fixed) expect(first.windows[1]!.resetAt).toBe(Date.UTC(2030, 2, 15))
      },
      timeout,
    )

    it(
      'keeps tenants apart',
      async () => {
        const { manager, id, provider } = await setup({ limits: [{ window: 'minute', requests: 1 }] })
        const other = randomTenantId('q')
        provider.setQuota(other, { limits: [{ window: 'minute', requests: 1 }] })
        expect((await manager.consume(id)).allowed).toBe(true)
        expect((await manager.consume(id)).allowed).toBe(false)
        expect((await manager.consume(other)).allowed).toBe(true)
      },
      timeout,
    )

    it(
      'applies a changed limit at once and keeps the usage already counted',
      async () => {
        const { manager, id, provider } = await setup({ limits: [{ window: 'minute', requests: 2 }] })
        await manager.consume(id)
        await manager.consume(id)
        expect((await manager.consume(id)).allowed).toBe(false)
        provider.setQuota(id, { limits: [{ window: 'minute', requests: 3 }] })
        expect(await manager.consume(id)).toMatchObject({ allowed: true, remaining: { requests: 0 } })
        expect((await manager.consume(id)).allowed).toBe(false)
      },
      timeout,
    )

    it(
      'a config change never resets usage: a window the current config does not name keeps its count until it ends',
      async () => {
        // Two instances on different versions of the tenant's config (a provider cache, a rolling
        // deploy) write to the same store, alternately: the newer one added a day limit.
        const newer: QuotaConfig = {
          limits: [
            { window: 'minute', requests: 1000 },
            { window: 'day', requests: 5 },
          ],
        }
        const older: QuotaConfig = { limits: [{ window: 'minute', requests: 1000 }] }
        const { manager, id, provider, used, clock } = await setup(newer)
        const admittedByNewer: boolean[] = []
        for (let i = 0; i < 10; i++) {
          provider.setQuota(id, newer)
          admittedByNewer.push((await manager.consume(id)).allowed)
          provider.setQuota(id, older)
          expect((await manager.consume(id)).allowed).toBe(true)
        }
        expect(admittedByNewer.filter(Boolean)).toHaveLength(5)
        provider.setQuota(id, newer)
        expect(await used('day')).toEqual({ requests: 5, tokens: 0 })
        expect(await used('minute')).toEqual({ requests: 15, tokens: 0 })

        // A window dropped from the config and added back counts what it counted before.
        const minute: QuotaConfig = { limits: [{ window: 'minute', requests: 2 }] }
        const other = randomTenantId('q')
        provider.setQuota(other, minute)
        expect((await manager.consume(other)).allowed).toBe(true)
        expect((await manager.consume(other)).allowed).toBe(true)
        provider.setQuota(other, { limits: [{ window: 'hour', requests: 10 }] })
        expect((await manager.consume(other)).allowed).toBe(true)
        provider.setQuota(other, minute)
        expect((await manager.consume(other)).allowed).toBe(false)
        // ... until it ends: nothing is kept past its window.
        clock.advance(2 * MINUTE)
        expect((await manager.consume(other)).allowed).toBe(true)
      },
      timeout,
    )

    it(
      'an unlimited dimension never denies: its count saturates at Number.MAX_SAFE_INTEGER, and the limited ones decide as before',
      async () => {
        const MAX = Number.MAX_SAFE_INTEGER
        // A client-chosen token count (an X-Token-Count header) of 2^53 - 1 on a tenant whose tokens
        // are unlimited: it must not lock the tenant out for the rest of the month.
        const { manager, id, used } = await setup({
          limits: [
            { window: 'minute', requests: 10 },
            { window: 'month', requests: 1000 },
          ],
        })
        expect(await manager.consume(id, { tokens: MAX })).toMatchObject({ allowed: true })
        expect(await used()).toEqual({ requests: 1, tokens: MAX })
        const next = await manager.consume(id, { tokens: 1 })
        expect(next).toMatchObject({ allowed: true, retryAfterMs: 0, remaining: { requests: 8 } })
        expect(next.remaining.tokens).toBeUndefined()
        expect(next.limit.tokens).toBeUndefined()
        expect(await manager.consume(id, { tokens: MAX })).toMatchObject({ allowed: true })
        expect(await used()).toEqual({ requests: 3, tokens: MAX })
        expect(await used('month')).toEqual({ requests: 3, tokens: MAX })
        // adjust never denies either: it saturates, and a refund counts down from there.
        expect((await manager.adjust(id, { tokens: MAX })).windows[0]!.used).toEqual({
          requests: 3,
          tokens: MAX,
        })
        expect((await manager.adjust(id, { tokens: -1 })).windows[0]!.used.tokens).toBe(MAX - 1)
        expect((await manager.consume(id, { tokens: 5 })).allowed).toBe(true)
        expect(await used()).toEqual({ requests: 4, tokens: MAX })
        // The limited dimension still decides, all-or-nothing: a denial charges no tokens either.
        const { admitted, denial } = await exhaust(manager, id, { tokens: 7 })
        expect(admitted).toBe(6)
        expect(denial.reason).toMatch(/minute requests/)
        expect(await used()).toEqual({ requests: 10, tokens: MAX })
        expect(await used('month')).toEqual({ requests: 10, tokens: MAX })

        // The same in the requests dimension, with requests unlimited and tokens limited.
        const requests = await setup({ limits: [{ window: 'minute', tokens: 10 }] })
        expect((await requests.manager.consume(requests.id, { requests: MAX - 1 })).allowed).toBe(true)
        expect((await requests.manager.consume(requests.id, { requests: 2 })).allowed).toBe(true)
        expect((await requests.manager.consume(requests.id)).allowed).toBe(true)
        expect(await requests.used()).toEqual({ requests: MAX, tokens: 0 })
        expect((await requests.manager.consume(requests.id, { requests: MAX, tokens: 10 })).allowed).toBe(
          true,
        )
        expect((await requests.manager.consume(requests.id, { tokens: 1 })).allowed).toBe(false)
        expect(await requests.used()).toEqual({ requests: MAX, tokens: 10 })

        // A window with no limit at all counts both dimensions, saturated, and denies nothing.
        const none = await setup({ limits: [{ window: 'hour' }] })
        for (let i = 0; i < 3; i++) {
          expect((await none.manager.consume(none.id, { requests: MAX, tokens: MAX })).allowed).toBe(true)
        }
        expect(await none.used('hour')).toEqual({ requests: MAX, tokens: MAX })
      },
      timeout,
    )

    it(
      'a limit at Number.MAX_SAFE_INTEGER is a limit like any other: reached, it denies with the exact retry time',
      async () => {
        const MAX = Number.MAX_SAFE_INTEGER
        const { manager, id, clock, used } = await setup({ limits: [{ window: 'minute', tokens: MAX }] })
        expect((await manager.consume(id, { tokens: MAX - 1 })).allowed).toBe(true)
        expect((await manager.consume(id, { tokens: 1 })).allowed).toBe(true)
        const denial = await manager.consume(id, { tokens: 1 })
        expect(denial).toMatchObject({ allowed: false, remaining: { tokens: 0 }, limit: { tokens: MAX } })
        expect(await used()).toEqual({ requests: 2, tokens: MAX })
        // Requests are unlimited here: the request a denial refused is not counted either.
        await expectExactRetry(clock, denial, () => manager.consume(id, { tokens: 1 }))
      },
      timeout,
    )
  })

  if (options.subjects !== false) testQuotaSubjects(name, factory, { timeout })
}
