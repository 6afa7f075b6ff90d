// 500 concurrent requests at a limit of 100, all deciding through the same tenant's object. The
// fixed-window run sends each as its own HTTP request (a separate Worker invocation, like real
// traffic); the others send them over one WebSocket (500 handlers in flight at once), which is
// several times cheaper to drive from Node.
import { ManualClock } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useWorkerd } from './workerd'

const workerd = useWorkerd()

const T0 = Date.UTC(2030, 2, 14, 9, 26)

describe('exactness under concurrency', () => {
  it.each(['fixed', 'sliding'] as const)(
    'the %s quota admits exactly 100 of 500 concurrent requests and writes once per admission',
    async (algorithm) => {
      const provider = new TestConfigProvider()
      const id = randomTenantId(`exact-${algorithm}`)
      provider.setQuota(id, { limits: [{ window: 'hour', requests: 100, tokens: 1_000_000 }] })
      const quotas = workerd().quotaManager(provider, {
        clock: new ManualClock(T0),
        algorithm,
        transport: algorithm === 'fixed' ? 'http' : 'socket',
      })
      const decisions = await Promise.all(
        Array.from({ length: 500 }, () => quotas.consume(id, { tokens: 3 })),
      )
      const admitted = decisions.filter((d) => d.allowed)
      expect(admitted).toHaveLength(100)
      // Every admission saw a distinct count: no two requests were decided on the same state.
      expect(new Set(admitted.map((d) => d.remaining.requests)).size).toBe(100)
      expect((await quotas.peek(id)).windows[0]!.used).toEqual({ requests: 100, tokens: 300 })
      expect(await workerd().inspect(id)).toMatchObject({ calls: 501, writes: 100 })
    },
    60_000,
  )

  it('the token bucket admits exactly its burst of 100 out of 500 concurrent requests', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('exact-rate')
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 100 })
    const limiter = workerd().rateLimiter(provider, { clock: new ManualClock(T0) })
    const decisions = await Promise.all(Array.from({ length: 500 }, () => limiter.consume(id)))
    expect(decisions.filter((d) => d.allowed)).toHaveLength(100)
    expect(decisions.filter((d) => !d.allowed).every((d) => d.retryAfterMs === 1000)).toBe(true)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 500, writes: 100 })
  }, 60_000)
})
