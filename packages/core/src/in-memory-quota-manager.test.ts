import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { rejectionOf } from '../testing/quota-manager'
import type { FixedWindowState } from './algorithms/fixed-window'
import { fixedWindowAdjust, fixedWindowConsume, fixedWindowPeek } from './algorithms/fixed-window'
import { fixedWindowLayout } from './algorithms/fixed-window-layout'
import { limitsOf } from './algorithms/memo'
import { ManualClock } from './clock'
import type { QuotaProvider } from './config'
import { InvalidTenantConfigError } from './errors'
import { InMemoryQuotaManager } from './in-memory-quota-manager'
import { copyJson, deepFreeze } from './json'
import type { QuotaConfig, QuotaWindow } from './schemas'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'

const T0 = Date.UTC(2030, 2, 14, 9, 26, 30)
const MINUTE = 60_000

/** The same quota for every tenant id: stands in for a config store with many tenants. */
function everyone(quota: QuotaConfig): QuotaProvider & { calls: number } {
  return {
    calls: 0,
    async quotaConfig() {
      this.calls += 1
      return quota
    },
  }
}

const managers = [
  ['InMemoryQuotaManager', (p: QuotaProvider, clock: ManualClock) => new InMemoryQuotaManager(p, { clock })],
  [
    'SlidingWindowQuotaManager',
    (p: QuotaProvider, clock: ManualClock) => new SlidingWindowQuotaManager(p, { clock }),
  ],
] as const

describe.each(managers)('%s', (_name, create) => {
  it('holds ~0 of 100,000 idle tenants two windows later, after a bounded number of calls', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', requests: 500, tokens: 1000 }] }), clock)
    for (let i = 0; i < 100_000; i++) await manager.consume(`tenant-${i}`, { tokens: 3 })
    expect(manager.size).toBe(100_000)
    clock.advance(2 * MINUTE)
    // Each call forgets up to 1,024 expired tenants: 100 calls cover all of them.
    for (let i = 0; i < 100; i++) await manager.consume('active')
    expect(manager.size).toBe(1)
    // A tenant with traffic keeps its state.
    expect((await manager.peek('active')).windows[0]!.used.requests).toBe(100)
  }, 60_000)

  it('does not create state for a denial, a zero cost, a peek or a refund of nothing', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', requests: 1, tokens: 10 }] }), clock)
    await manager.consume('a', { tokens: 11 })
    await manager.consume('b', { requests: 0, tokens: 0 })
    await manager.peek('c')
    await manager.adjust('d', { tokens: -5 })
    expect(manager.size).toBe(0)
    await manager.adjust('e', { tokens: 5 })
    expect(manager.size).toBe(1)
  })

  it('an entry emptied by a refund stays until the sweep, and still reads as zero', async () => {
    const clock = new ManualClock(T0)
    const manager = create(everyone({ limits: [{ window: 'minute', tokens: 10 }] }), clock)
    await manager.consume('a', { requests: 0, tokens: 5 })
    await manager.adjust('a', { tokens: -5 })
    expect((await manager.peek('a')).windows[0]!.used).toEqual({ requests: 0, tokens: 0 })
    clock.advance(3 * MINUTE)
    await manager.peek('a')
    expect(manager.size).toBe(0)
  })

  it('reads the clock after the provider answered, so a slow provider cannot stretch a window', async () => {
    const clock = new ManualClock(Date.UTC(2030, 2, 14, 9, 26, 59, 999))
    const quota: QuotaConfig = { limits: [{ window: 'minute', requests: 1 }] }
    const slow: QuotaProvider = {
      async quotaConfig() {
        clock.advance(1)
        return quota
      },
    }
    const manager = create(slow, clock)
    const first = await manager.consume('a')
    expect(first.windows[0]!.used.requests).toBe(1)
    expect(first.allowed).toBe(true)
    expect((await manager.peek('a')).windows[0]!.used.requests).toBe(1)
  })

  it('validates the tenant id and the cost before asking the provider', async () => {
    const provider = everyone({ limits: [] })
    const manager = create(provider, new ManualClock(T0))
    expect(await rejectionOf(manager.consume('no spaces'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.adjust('', { tokens: 1 }))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.peek('a/b'))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.consume('ok', { tokens: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(provider.calls).toBe(0)
  })

  it('passes provider failures through unchanged and rejects an invalid config', async () => {
    const failure = new Error('db down')
    const failing = create({ quotaConfig: () => Promise.reject(failure) }, new ManualClock(T0))
    expect(await rejectionOf(failing.consume('a'))).toBe(failure)
    const bad = create(everyone({ limits: [{ window: 'minute', requests: -5 }] }), new ManualClock(T0))
    expect(await rejectionOf(bad.consume('a'))).toMatchObject({ code: 'tenant_invalid_config' })
  })

  it('rejects a provider without quotaConfig and a clock without now()', () => {
    expect(() => create({} as QuotaProvider, new ManualClock(T0))).toThrow(/quotaConfig/)
    expect(() => create(null as unknown as QuotaProvider, new ManualClock(T0))).toThrow(
      InvalidTenantConfigError,
    )
    expect(() => create(everyone({ limits: [] }), {} as ManualClock)).toThrow(/clock/)
  })
})

describe('InMemoryQuotaManager', () => {
  it('uses the system clock by default', async () => {
    const manager = new InMemoryQuotaManager(everyone({ limits: [{ window: 'minute', requests: 1 }] }))
    const before = Date.now()
    const decision = await manager.consume('a')
    expect(decision.resetAt).toBeGreaterThan(before)
    expect(decision.resetAt).toBeLessThanOrEqual(Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE)
  })
})

/** A deep-frozen copy, as the config managers hand out. */
const frozen = (quota: QuotaConfig): QuotaConfig => deepFreeze(copyJson(quota))

describe('InMemoryQuotaManager against fixedWindowConsume', () => {
  const windows: QuotaWindow[] = ['minute', 'hour', 'day', 'month']
  // Room for a few requests per window, so admissions (the in-place path) and denials both occur.
  // Now and then a cost near 2^53, which an unlimited dimension saturates at MAX_QUOTA_COUNT.
  const huge = fc.integer({ min: 2 ** 52, max: Number.MAX_SAFE_INTEGER })
  const limit = fc.record(
    {
      window: fc.constantFrom(...windows),
      requests: fc.nat(12),
      tokens: fc.oneof({ weight: 9, arbitrary: fc.nat(120) }, { weight: 1, arbitrary: huge }),
    },
    { requiredKeys: ['window'] },
  )
  const quota = fc
    .uniqueArray(limit, { selector: (l) => l.window, minLength: 0, maxLength: 4 })
    .map((limits) => ({ limits }))
  const step = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('consume' as const),
        requests: fc.oneof({ weight: 19, arbitrary: fc.nat(2) }, { weight: 1, arbitrary: huge }),
        tokens: fc.oneof({ weight: 9, arbitrary: fc.nat(20) }, { weight: 1, arbitrary: huge }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('adjust' as const),
        tokens: fc.oneof(
          fc.integer({ min: -30, max: 30 }),
          huge,
          huge.map((t) => -t),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('peek' as const) }) },
    {
      // Mostly within an hour (a shorter window goes stale while a longer one still counts).
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('advance' as const),
        ms: fc.oneof(fc.nat(90_000), fc.nat(4 * 86_400_000)),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('config' as const), index: fc.nat(2) }) },
  )

  it('decides, charges and reports exactly as the pure algorithm, frozen configs or not (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(quota, { minLength: 3, maxLength: 3 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), step), { maxLength: 80 }),
        async (quotas, freeze, steps) => {
          const configs = quotas.map((q) => (freeze ? frozen(q) : q))
          let config = configs[0]!
          const clock = new ManualClock(Date.UTC(2030, 0, 15, 10, 58, 58))
          const manager = new InMemoryQuotaManager({ quotaConfig: async () => config }, { clock })
          const reference = new Map<string, FixedWindowState>()
          for (const [tenant, s] of steps) {
            const now = clock.now()
            const state = reference.get(tenant)
            if (s.op === 'advance') clock.advance(s.ms)
            else if (s.op === 'config') config = configs[s.index]!
            else if (s.op === 'peek') {
              expect((await manager.peek(tenant)).windows).toEqual(fixedWindowPeek(state, config, now))
            } else if (s.op === 'adjust') {
              const expected = fixedWindowAdjust(state, config, s.tokens, now)
              reference.set(tenant, expected.state)
              expect((await manager.adjust(tenant, { tokens: s.tokens })).windows).toEqual(expected.usage)
            } else {
              const cost = { requests: s.requests, tokens: s.tokens }
              const expected = fixedWindowConsume(state, config, cost, now)
              if (expected.decision.allowed) reference.set(tenant, expected.state)
              expect(await manager.consume(tenant, cost)).toEqual(expected.decision)
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('checks a config that is not frozen on every call, and never caches an invalid frozen one', async () => {
    const clock = new ManualClock(T0)
    const quota: QuotaConfig = { limits: [{ window: 'minute', requests: 1 }] }
    const manager = new InMemoryQuotaManager(everyone(quota), { clock })
    expect((await manager.consume('a')).allowed).toBe(true)
    expect((await manager.consume('a')).allowed).toBe(false)
    quota.limits[0]!.requests = 3 // a hand-written provider that edits its object in place
    expect((await manager.consume('a')).allowed).toBe(true)
    quota.limits[0]!.requests = -1
    expect(await rejectionOf(manager.consume('a'))).toMatchObject({ code: 'tenant_invalid_config' })

    const invalid = frozen({ limits: [{ window: 'minute', requests: 1.5 }] })
    const strict = new InMemoryQuotaManager(everyone(invalid), { clock })
    for (let i = 0; i < 2; i++) {
      expect(await rejectionOf(strict.consume('a'))).toMatchObject({ code: 'tenant_invalid_config' })
    }
  })

  it('never over-admits concurrent calls, with a frozen config and an in-place charge', async () => {
    const clock = new ManualClock(T0)
    const manager = new InMemoryQuotaManager(
      everyone(
        frozen({
          limits: [
            { window: 'minute', requests: 50 },
            { window: 'hour', requests: 70 },
          ],
        }),
      ),
      { clock },
    )
    await manager.consume('a')
    const decisions = await Promise.all(Array.from({ length: 200 }, () => manager.consume('a')))
    expect(decisions.filter((d) => d.allowed)).toHaveLength(49)
    expect((await manager.peek('a')).windows.map((w) => w.used.requests)).toEqual([50, 50])
  })

  it('skips the id check only for ids it holds', async () => {
    const manager = new InMemoryQuotaManager(everyone({ limits: [{ window: 'minute', requests: 5 }] }), {
      clock: new ManualClock(T0),
    })
    await manager.consume('known')
    expect((await manager.consume('known')).allowed).toBe(true)
    expect(await rejectionOf(manager.consume('known '))).toMatchObject({ code: 'tenant_invalid_id' })
    expect(await rejectionOf(manager.consume(7 as unknown as string))).toMatchObject({
      code: 'tenant_invalid_id',
    })
  })
})

describe('fixedWindowLayout: an unlimited dimension saturates in place', () => {
  const MAX = Number.MAX_SAFE_INTEGER
  const now = Date.UTC(2030, 2, 14, 9, 26, 30)
  const config: QuotaConfig = {
    limits: [
      { window: 'minute', requests: 10 },
      { window: 'month', requests: 1000 },
    ],
  }

  it('admits a cost past MAX_QUOTA_COUNT in an unlimited dimension on the in-place path, as fixedWindowConsume does', () => {
    const layout = fixedWindowLayout
    let state = fixedWindowConsume(undefined, config, { tokens: MAX }, now).state
    const entry = layout.create('a', state)
    for (const cost of [
      { requests: 1, tokens: 1 },
      { requests: 1, tokens: MAX },
      { requests: 0, tokens: 5 },
    ]) {
      const expected = fixedWindowConsume(state, config, cost, now)
      expect(expected.decision.allowed).toBe(true)
      // Taken in place (not left to fixedWindowConsume), with the same decision and counts.
      expect(layout.charge(entry, limitsOf(config), cost, now)).toEqual(expected.decision)
      state = expected.state
      expect(layout.read(entry)).toEqual(state)
    }
    expect(state.minute).toMatchObject({ requests: 3, tokens: MAX })
    expect(state.month).toMatchObject({ requests: 3, tokens: MAX })
    // A limited dimension still refuses, and the refusal changes nothing.
    const full = fixedWindowConsume(state, config, { requests: 8 }, now)
    expect(full.decision.allowed).toBe(false)
    expect(layout.charge(entry, limitsOf(config), { requests: 8, tokens: 0 }, now)).toBeUndefined()
    expect(layout.read(entry)).toEqual(state)
  })

  it('a tenant whose unlimited tokens were pushed to the bound keeps being admitted (InMemoryQuotaManager)', async () => {
    const clock = new ManualClock(now)
    const manager = new InMemoryQuotaManager(everyone(deepFreeze(copyJson(config))), { clock })
    expect((await manager.consume('acme', { tokens: MAX })).allowed).toBe(true)
    for (let i = 0; i < 5; i++) {
      clock.advance(MINUTE)
      const decision = await manager.consume('acme', { tokens: 1_000 })
      expect(decision).toMatchObject({ allowed: true, retryAfterMs: 0, remaining: { requests: 9 } })
    }
    const month = (await manager.peek('acme')).windows.find((w) => w.window === 'month')!
    expect(month.used).toEqual({ requests: 6, tokens: MAX })
  })
})

describe('adjust with a subject whose pattern has invalid limits', () => {
  it.each([
    ['fixed', (provider: QuotaProvider, clock: ManualClock) => new InMemoryQuotaManager(provider, { clock })],
    [
      'sliding',
      (provider: QuotaProvider, clock: ManualClock) => new SlidingWindowQuotaManager(provider, { clock }),
    ],
  ])('%s: refuses before adjusting the tenant, so a retry cannot adjust it twice', async (_name, make) => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1))
    // A hand-written provider: the config managers would have refused this pattern.
    const quota = {
      limits: [{ window: 'minute' as const, tokens: 100 }],
      subjects: [{ match: 'k:*', limits: [{ window: 'minute' as const, tokens: -5 }] }],
    }
    const quotas = make({ quotaConfig: async () => quota }, clock)
    const error = await rejectionOf(quotas.adjust('acme', { tokens: 40, subject: 'k:1' }))
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    expect((await quotas.peek('acme')).windows[0]!.used.tokens).toBe(0)
  })
})
