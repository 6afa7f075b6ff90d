// What one decision costs (Durable Object requests, storage writes), how errors cross the RPC
// boundary, and the object's own time and bookkeeping; all on workerd.
import { calendarWindow, ManualClock, type QuotaLimit } from '@tenant/core'
import { randomTenantId, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { PROTOCOL_VERSION } from '../src/protocol'
import { useWorkerd } from './workerd'

const workerd = useWorkerd()

const T0 = Date.UTC(2030, 2, 14, 9, 26)

function setup(limits: QuotaLimit[] = [{ window: 'minute', requests: 2, tokens: 100 }]) {
  const provider = new TestConfigProvider()
  const clock = new ManualClock(T0)
  const id = randomTenantId('obj')
  provider.setQuota(id, { limits })
  provider.setRateLimit(id, { requestsPerSecond: 1, burst: 2 })
  return { provider, clock, id, quotas: workerd().quotaManager(provider, { clock }) }
}

describe('cost per decision', () => {
  it('an admitted consume is one request and one write; the first also schedules the cleanup alarm', async () => {
    const { quotas, id } = setup()
    await quotas.consume(id)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 1, writes: 1, alarmWrites: 1, deletes: 0 })
    await quotas.consume(id, { tokens: 5 })
    // The alarm is already set: later decisions write the state only.
    expect(await workerd().inspect(id)).toMatchObject({ calls: 2, writes: 2, alarmWrites: 1 })
  })

  it('a denial, a peek and a zero adjust are one request each and write nothing', async () => {
    const { quotas, id } = setup()
    await quotas.consume(id)
    await quotas.consume(id)
    const before = await workerd().inspect(id)
    expect((await quotas.consume(id)).allowed).toBe(false)
    await quotas.peek(id)
    await quotas.adjust(id, { tokens: 0 })
    expect(await workerd().inspect(id)).toMatchObject({ calls: before.calls + 3, writes: before.writes })
  })

  it('adjust is one request and one write', async () => {
    const { quotas, id } = setup()
    await quotas.adjust(id, { tokens: 30 })
    expect(await workerd().inspect(id)).toMatchObject({ calls: 1, writes: 1 })
  })

  it('a tenant without limits, or without a rate limit, costs no request at all', async () => {
    const { provider, clock, id } = setup([])
    provider.setRateLimit(id, null)
    const quotas = workerd().quotaManager(provider, { clock })
    const limiter = workerd().rateLimiter(provider, { clock })
    expect(await quotas.consume(id, { tokens: 10 ** 9 })).toMatchObject({ allowed: true, windows: [] })
    expect(await quotas.adjust(id, { tokens: 5 })).toEqual({ tenantId: id, windows: [] })
    expect(await quotas.peek(id)).toEqual({ tenantId: id, windows: [] })
    expect(await limiter.consume(id, { cost: 1000 })).toMatchObject({ allowed: true, retryAfterMs: 0 })
    expect(await workerd().inspect(id)).toMatchObject({ calls: 0, writes: 0, keys: [] })
  })

  it('a rate-limit decision is one request; a full bucket is not stored, a spent one is', async () => {
    const { provider, clock, id } = setup()
    const limiter = workerd().rateLimiter(provider, { clock })
    expect(await limiter.consume(id, { cost: 0 })).toMatchObject({ allowed: true, remaining: 2 })
    expect(await workerd().inspect(id)).toMatchObject({ calls: 1, writes: 0, keys: [] })
    await limiter.consume(id)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 2, writes: 1, keys: ['v1:rate'] })
    clock.advance(2_000)
    // Refilled: taking nothing from a full bucket leaves no state behind.
    await limiter.consume(id, { cost: 0 })
    expect(await workerd().inspect(id)).toMatchObject({ calls: 3, keys: [] })
  })

  it('a bucket that would be full again only after 2189 still answers, keeps its charge and gets an alarm', async () => {
    // Schema-valid: a slow rate, a huge burst, and a cost that empties it. Real time, as the
    // object's alarm runs on its own clock.
    const provider = new TestConfigProvider()
    const id = randomTenantId('slow')
    provider.setRateLimit(id, { requestsPerSecond: 1e-6, burst: 1e12 })
    const limiter = workerd().rateLimiter(provider)
    const allowed: boolean[] = []
    for (const cost of [1e12, 1, 1]) allowed.push((await limiter.consume(id, { cost })).allowed)
    expect(allowed).toEqual([true, false, false])
    const inspection = await workerd().inspect(id)
    expect(inspection.keys).toEqual(['v1:rate'])
    expect(inspection.alarm).toBeGreaterThan(Date.now())
  })

  it('bad input never reaches the object', async () => {
    const { quotas, provider, clock, id } = setup()
    expect(await rejectionOf(quotas.consume(id, { tokens: -1 }))).toMatchObject({ code: 'invalid_cost' })
    expect(await rejectionOf(quotas.consume('no/such id'))).toMatchObject({
      code: 'tenant_invalid_id',
      status: 400,
    })
    provider.setQuota(id, { limits: [{ window: 'minute', requests: -5 }] })
    expect(await rejectionOf(quotas.consume(id))).toMatchObject({
      code: 'tenant_invalid_config',
      status: 400,
    })
    provider.setRateLimit(id, { requestsPerSecond: 0, burst: 1.5 })
    const limiter = workerd().rateLimiter(provider, { clock })
    const error = await rejectionOf(limiter.consume(id))
    expect(error).toMatchObject({ code: 'tenant_invalid_config', status: 400 })
    expect((error as Error).message).toMatch(/requestsPerSecond/)
    expect((error as Error).message).toMatch(/burst/)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 0 })
  })
})

describe('errors and versions', () => {
  it('a failing object call is a TenantBackendError (503), never a denial, and is not retried', async () => {
    const { quotas, id } = setup()
    await workerd().send({ kind: 'break', tenantId: id })
    const error = await rejectionOf(quotas.consume(id))
    expect(error).toMatchObject({
      name: 'TenantBackendError',
      code: 'tenant_backend_unavailable',
      status: 503,
    })
    expect((error as Error).message).toMatch(/simulated storage failure/)
    expect(await workerd().inspect(id)).toMatchObject({ calls: 1, writes: 0 })
    // The fault was one-shot; the next call is answered normally and nothing was charged.
    expect(await quotas.consume(id)).toMatchObject({ allowed: true, remaining: { requests: 1 } })
  })

  it('the object refuses a call from another protocol version', async () => {
    const { id } = setup()
    const reply = await workerd().send({
      kind: 'raw',
      tenantId: id,
      call: {
        v: PROTOCOL_VERSION + 1,
        op: 'peek',
        algorithm: 'fixed',
        precision: 10,
        config: { limits: [] },
      },
    })
    expect(reply).toMatchObject({ ok: false, error: { code: 'tenant_backend_unavailable' } })
    expect((reply as { error: { message: string } }).error.message).toMatch(/protocol mismatch/)
  })

  it('accepts protocol 1 (no subject) and 2 (a subject checked with the tenant, all-or-nothing)', async () => {
    const { id } = setup()
    const base = {
      op: 'consume',
      algorithm: 'fixed',
      precision: 10,
      now: Date.UTC(2030, 2, 14, 9, 26),
      cost: { requests: 1, tokens: 0 },
      config: { limits: [{ window: 'minute', requests: 5 }] },
    }
    const v1 = await workerd().send({ kind: 'raw', tenantId: id, call: { ...base, v: 1 } })
    expect(v1).toMatchObject({ ok: true, value: { allowed: true, remaining: { requests: 4 } } })
    const v2 = {
      ...base,
      v: PROTOCOL_VERSION,
      subject: 'key:a',
      subjectConfig: { limits: [{ window: 'minute', requests: 1 }] },
    }
    const admitted = await workerd().send({ kind: 'raw', tenantId: id, call: v2 })
    expect(admitted).toMatchObject({ ok: true, value: { allowed: true, remaining: { requests: 0 } } })
    const denied = await workerd().send({ kind: 'raw', tenantId: id, call: v2 })
    expect(denied).toMatchObject({ ok: true, value: { allowed: false } })
    const peek = await workerd().send({ kind: 'raw', tenantId: id, call: { ...base, v: 1, op: 'peek' } })
    // The tenant was charged twice (v1 and the admitted v2), not by the denied call.
    expect((peek as { value: { used: { requests: number } }[] }).value[0]!.used.requests).toBe(2)
  })

  it('an invalid config that only the object sees comes back as InvalidTenantConfigError with its issues', async () => {
    const { id } = setup()
    const reply = await workerd().send({
      kind: 'raw',
      tenantId: id,
      call: {
        v: PROTOCOL_VERSION,
        op: 'peek',
        algorithm: 'fixed',
        precision: 10,
        config: { limits: [{ window: 'week', requests: 1 }] },
      },
    })
    expect(reply).toMatchObject({ ok: false, error: { code: 'tenant_invalid_config' } })
    expect((reply as { error: { issues: unknown[] } }).error.issues.length).toBeGreaterThan(0)
  })
})

describe('time, names and state', () => {
  it("without a clock the object's own time decides the window", async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('objtime')
    provider.setQuota(id, { limits: [{ window: 'month', requests: 5 }] })
    const quotas = workerd().quotaManager(provider)
    const before = Date.now()
    const decision = await quotas.consume(id)
    const after = Date.now()
    expect(decision.allowed).toBe(true)
    // The month that contained the call (it may have turned in between; both ends are allowed).
    const ends = new Set([calendarWindow('month', before).end, calendarWindow('month', after).end])
    expect(ends.has(decision.resetAt)).toBe(true)
  })

  it('fixed and sliding counts are separate states in the same object', async () => {
    const { provider, clock, id, quotas } = setup()
    const sliding = workerd().quotaManager(provider, { clock, algorithm: 'sliding', precision: 12 })
    await quotas.consume(id)
    await sliding.consume(id)
    await sliding.consume(id)
    expect((await quotas.peek(id)).windows[0]!.used.requests).toBe(1)
    expect((await sliding.peek(id)).windows[0]!.used.requests).toBe(2)
    expect((await workerd().inspect(id)).keys.sort()).toEqual(['v1:quota:fixed', 'v1:quota:sliding:12'])
  })

  it('a prefix gives each manager its own objects', async () => {
    const { provider, clock, id, quotas } = setup()
    const other = workerd().quotaManager(provider, { clock, prefix: 'batch:' })
    await quotas.consume(id)
    await quotas.consume(id)
    expect((await quotas.consume(id)).allowed).toBe(false)
    expect((await other.consume(id)).allowed).toBe(true)
    expect(await workerd().inspect(id, 'batch:')).toMatchObject({ calls: 1 })
  })

  it('a Worker with an older config that lacks a window does not erase that window’s count', async () => {
    const { clock, id, quotas } = setup([
      { window: 'minute', requests: 10, tokens: 0 },
      { window: 'day', requests: 3, tokens: 0 },
    ])
    await quotas.consume(id)
    // A second Worker whose cached config predates the day limit.
    const stale = new TestConfigProvider()
    stale.setQuota(id, { limits: [{ window: 'minute', requests: 10 }] })
    const staleQuotas = workerd().quotaManager(stale, { clock })
    await staleQuotas.consume(id)
    await staleQuotas.adjust(id, { tokens: 4 })
    const day = (await quotas.peek(id)).windows.find((w) => w.window === 'day')!
    expect(day.used).toEqual({ requests: 1, tokens: 0 })
    expect((await quotas.peek(id)).windows[0]!.used).toEqual({ requests: 2, tokens: 4 })
    // The day limit keeps counting where it was: two more, then refused.
    expect((await quotas.consume(id)).allowed).toBe(true)
    expect((await quotas.consume(id)).allowed).toBe(true)
    expect(await quotas.consume(id)).toMatchObject({ allowed: false, reason: expect.stringMatching(/day/) })
  })

  it('a refund to zero deletes the stored state instead of writing an empty one', async () => {
    const { quotas, id } = setup([{ window: 'minute', requests: 0, tokens: 100 }])
    await quotas.adjust(id, { tokens: 40 })
    expect((await workerd().inspect(id)).keys).toEqual(['v1:quota:fixed'])
    await quotas.adjust(id, { tokens: -40 })
    // requests were never counted (adjust charges tokens only), so nothing is left to keep.
    expect(await workerd().inspect(id)).toMatchObject({ keys: [], deletes: 1 })
  })
})
