// The optional coarse pre-filter: Miniflare's emulation of the Workers Rate Limiting binding for
// the real path, and fake bindings for what the emulator cannot produce (a refusal on demand, a
// failing binding). Neither is the production binding, which counts per location and approximately.
import { ManualClock } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useWorkerd } from './workerd'

const workerd = useWorkerd({ shieldLimit: 3 })

const T0 = Date.UTC(2030, 2, 14, 9, 26)

function setup() {
  const provider = new TestConfigProvider()
  const clock = new ManualClock(T0)
  const id = randomTenantId('shield')
  provider.setQuota(id, { limits: [{ window: 'minute', requests: 100 }] })
  provider.setRateLimit(id, { requestsPerSecond: 10, burst: 100 })
  return { provider, clock, id }
}

describe('prefilter (Workers Rate Limiting binding)', () => {
  it('the emulated binding refuses past its limit before the object is asked', async () => {
    // The emulator counts in fixed 60 s periods of the wall clock; a run that straddles a period
    // boundary sees a fresh count, so it is repeated (at most twice more) rather than misread.
    for (let attempt = 0; attempt < 3; attempt++) {
      const { provider, clock, id } = setup()
      const quotas = workerd().quotaManager(provider, { clock, prefilter: 'real' })
      const period = Math.floor(Date.now() / 60_000)
      const decisions = []
      for (let i = 0; i < 5; i++) decisions.push(await quotas.consume(id))
      if (Math.floor(Date.now() / 60_000) !== period) continue
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false])
      expect(decisions[3]).toMatchObject({ retryAfterMs: 60_000, resetAt: T0 + 60_000, windows: [] })
      expect(decisions[3]!.reason).toMatch(/pre-filter/)
      // Only the three admitted requests reached the object, and only they were counted.
      expect(await workerd().inspect(id)).toMatchObject({ calls: 3 })
      expect((await quotas.peek(id)).windows[0]!.used.requests).toBe(3)
      return
    }
    throw new Error('three runs in a row straddled a 60 s period boundary')
  })

  it('a refusal costs no object request, for quotas and rate limits alike', async () => {
    const { provider, clock, id } = setup()
    const quota = await workerd().quotaManager(provider, { clock, prefilter: 'refuse' }).consume(id)
    expect(quota).toMatchObject({ allowed: false, retryAfterMs: 10_000, remaining: {}, limit: {} })
    const rate = await workerd().rateLimiter(provider, { clock, prefilter: 'refuse' }).consume(id)
    expect(rate).toMatchObject({ allowed: false, retryAfterMs: 10_000, resetAt: T0 + 10_000 })
    expect(rate.reason).toMatch(/pre-filter/)
    expect(rate.limit).toBeUndefined()
    expect(await workerd().inspect(id)).toMatchObject({ calls: 0 })
  })

  it('adjust and peek are never filtered', async () => {
    const { provider, clock, id } = setup()
    const quotas = workerd().quotaManager(provider, { clock, prefilter: 'refuse' })
    expect((await quotas.adjust(id, { tokens: 5 })).windows[0]!.used.tokens).toBe(5)
    expect((await quotas.peek(id)).windows[0]!.used.tokens).toBe(5)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 2 })
  })

  it('a failing binding is reported and the exact check still decides', async () => {
    const { provider, clock, id } = setup()
    const quotas = workerd().quotaManager(provider, { clock, prefilter: 'throw' })
    const limiter = workerd().rateLimiter(provider, { clock, prefilter: 'throw' })
    expect(await quotas.consume(id)).toMatchObject({ allowed: true, remaining: { requests: 99 } })
    expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 99 })
    const seen = (await workerd().send({ kind: 'shieldKeys' })) as { errors: string[] }
    expect(seen.errors).toEqual([
      'Error: rate limiting binding unavailable',
      'Error: rate limiting binding unavailable',
    ])
  })

  it('the binding is asked with the configured key, once per decision', async () => {
    const { provider, clock, id } = setup()
    await workerd().send({ kind: 'shieldKeys' })
    await workerd().quotaManager(provider, { clock, prefilter: 'record' }).consume(id)
    await workerd().rateLimiter(provider, { clock, prefilter: 'record' }).consume(id)
    const seen = (await workerd().send({ kind: 'shieldKeys' })) as { keys: string[] }
    expect(seen.keys).toEqual([`tenant:${id}`, `tenant:${id}`])
  })
})
