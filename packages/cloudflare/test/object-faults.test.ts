// Faults and malformed calls at the Durable Object, on workerd: a release that fails once, calls
// whose config is not an object, and a refund to a subject the object holds nothing for.
import { MAX_SUBJECTS_PER_TENANT } from '@tenant/core'
import { randomTenantId } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useFaultyObject } from './faulty'

const run = useFaultyObject()
const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)

describe('DurableObjectConcurrencyLimiter: a release whose call fails', () => {
  it('is sent again, so the slot is not held until the lease expires', async () => {
    const result = await run('leaseReleaseRetry', { tenant: randomTenantId('lease') })
    expect(result.inFlight).toBe(0)
    expect(result.nextAllowed).toBe(true)
  }, 30_000)
})

describe('TenantQuotaObject: a call whose config is not an object', () => {
  it('is a typed error for a rate-limit take, and the spent bucket stays spent', async () => {
    const tenant = randomTenantId('rnull')
    const config = { requestsPerSecond: 0.001, burst: 2 }
    const take = (cfg: unknown, opId?: string) =>
      run('raw', {
        tenant,
        method: 'rateLimit',
        call: { v: 1, config: cfg, cost: 1, now: T0, ...(opId ? { opId } : {}) },
      })
    for (const allowed of [true, true, false]) expect((await take(config)).value.allowed).toBe(allowed)
    // Core reads a null config as "no rate limit", which dropped the spent bucket, then threw a TypeError.
    expect(await take(null, 'bad-op')).toMatchObject({ ok: false, error: { code: 'tenant_invalid_config' } })
    expect((await take(config)).value.allowed).toBe(false)
  }, 30_000)

  it('is a typed error for a quota consume or adjust, and the spent window stays spent', async () => {
    const tenant = randomTenantId('qnull')
    const good = { limits: [{ window: 'minute', requests: 1 }] }
    const call = (c: Record<string, unknown>) =>
      run('raw', {
        tenant,
        method: 'quota',
        call: { v: 1, algorithm: 'fixed', precision: 10, now: T0, ...c },
      })
    expect(
      (await call({ op: 'consume', config: good, cost: { requests: 1, tokens: 0 } })).value.allowed,
    ).toBe(true)
    for (const bad of [null, 5, []]) {
      const consume = await call({
        op: 'consume',
        config: bad,
        cost: { requests: 1, tokens: 0 },
        opId: `x${String(bad)}`,
      })
      expect(consume, JSON.stringify(bad)).toMatchObject({
        ok: false,
        error: { code: 'tenant_invalid_config' },
      })
      const adjust = await call({ op: 'adjust', config: bad, tokens: -5 })
      expect(adjust, JSON.stringify(bad)).toMatchObject({
        ok: false,
        error: { code: 'tenant_invalid_config' },
      })
    }
    expect(
      (await call({ op: 'consume', config: good, cost: { requests: 1, tokens: 0 } })).value.allowed,
    ).toBe(false)
  }, 30_000)
})

describe('TenantQuotaObject: a refund to a subject it holds nothing for', () => {
  it('evicts no live subject when the tenant is at its subject bound', async () => {
    const tenant = randomTenantId('evict')
    const base = { v: 2, algorithm: 'fixed', precision: 10, now: T0, config: { limits: [] } }
    const spent = { limits: [{ window: 'minute', requests: 1 }] }
    const daily = { limits: [{ window: 'day', requests: 1000, tokens: 1_000_000 }] }
    const call = (c: Record<string, unknown>) =>
      run('raw', { tenant, method: 'quota', call: { ...base, ...c } })
    const consumeVictim = () =>
      call({ op: 'consume', subject: 'victim', subjectConfig: spent, cost: { requests: 1, tokens: 0 } })
    expect((await consumeVictim()).value.allowed).toBe(true)
    expect((await consumeVictim()).value.allowed).toBe(false)
    // The victim's counts expire first: it is the one a new subject past the bound would evict.
    const others = MAX_SUBJECTS_PER_TENANT - 1
    for (let start = 0; start < others; start += 500) {
      const calls = []
      for (let i = start; i < Math.min(others, start + 500); i++) {
        calls.push({
          ...base,
          op: 'consume',
          subject: `s${i}`,
          subjectConfig: daily,
          cost: { requests: 1, tokens: 0 },
        })
      }
      expect(await run('many', { tenant, method: 'quota', calls })).toEqual([])
    }
    const refund = await call({ op: 'adjust', subject: 'ghost', subjectConfig: daily, tokens: -10 })
    expect(refund.ok).toBe(true)
    expect((await consumeVictim()).value.allowed).toBe(false)
  }, 240_000)
})
