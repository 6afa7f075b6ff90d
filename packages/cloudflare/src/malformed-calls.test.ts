// Malformed calls sent straight to the object (as a Worker of another build, or a bug, would): the
// object checks them itself, with typed errors, and stores nothing for them.
import { randomTenantId } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useWorkerd } from '../test/workerd'
import { BASE_PROTOCOL_VERSION, PROTOCOL_VERSION } from './protocol'

const workerd = useWorkerd()
const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)
const rconfig = { requestsPerSecond: 0.001, burst: 5 }
const take = (id: string, cost: unknown, extra: Record<string, unknown> = {}) =>
  workerd().send({
    kind: 'raw-rate',
    tenantId: id,
    call: { v: BASE_PROTOCOL_VERSION, config: rconfig, cost, now: T0, ...extra },
  }) as Promise<any>
const qconfig = { limits: [{ window: 'minute', requests: 3 }] }
const rawq = (id: string, call: Record<string, unknown>) =>
  workerd()
    .send({
      kind: 'raw',
      tenantId: id,
      call: {
        v: BASE_PROTOCOL_VERSION,
        algorithm: 'fixed',
        precision: 10,
        config: qconfig,
        now: T0,
        ...call,
      },
    })
    .catch((e) => ({ threw: String(e) })) as Promise<any>

describe('TenantQuotaObject: a malformed rate-limit cost', () => {
  it('a negative cost is refused with invalid_cost, not used to refill the bucket', async () => {
    const id = randomTenantId('rtneg')
    let admitted = 0
    for (let i = 0; i < 5; i++) if ((await take(id, 1)).value?.allowed) admitted++
    expect(admitted).toBe(5)
    expect((await take(id, 1)).value.allowed).toBe(false)
    const neg = await take(id, -5)
    for (let i = 0; i < 5; i++) if ((await take(id, 1)).value?.allowed) admitted++
    expect(neg.ok).toBe(false)
    expect(admitted).toBe(5)
  }, 60_000)

  it('NaN / fractional / string costs are refused with invalid_cost', async () => {
    const out: Record<string, unknown> = {}
    for (const cost of [0.5, '1', null, { n: 1 }]) {
      const id = randomTenantId('rtbad')
      out[JSON.stringify(cost)] = await take(id, cost).catch((e) => ({ threw: `${e.name}: ${e.message}` }))
    }
    const idn = randomTenantId('rtnan')
    out.NaN = await take(idn, Number.NaN).catch((e) => ({ threw: `${e.name}: ${e.message}` }))
    for (const r of Object.values(out))
      expect(r).toMatchObject({ ok: false, error: { code: 'invalid_cost' } })
  }, 60_000)
})

describe('TenantQuotaObject: a malformed quota call', () => {
  it('an unknown algorithm is refused rather than stored under a new key', async () => {
    const id = randomTenantId('rtalg')
    const r = await rawq(id, { op: 'consume', cost: {}, algorithm: 'bogus', precision: undefined })
    const ins = (await workerd().inspect(id)) as any
    expect(r.ok).toBe(false)
    expect(ins.keys).toEqual([])
  }, 60_000)

  it('an adjust with a decidedAt that is no decision time is refused and changes nothing', async () => {
    const id = randomTenantId('rtdec')
    const tokens = { limits: [{ window: 'minute', tokens: 100 }] }
    expect((await rawq(id, { op: 'consume', cost: { requests: 1, tokens: 40 }, config: tokens })).ok).toBe(
      true,
    )
    for (const decidedAt of ['1', null, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = await rawq(id, { op: 'adjust', tokens: -40, decidedAt, config: tokens })
      expect(r).toMatchObject({ ok: false, error: { code: 'invalid_cost' } })
    }
    const peek = await rawq(id, { op: 'peek', config: tokens })
    expect(peek.value[0].used).toEqual({ requests: 1, tokens: 40 })
    const refunded = await rawq(id, { op: 'adjust', tokens: -40, decidedAt: T0, config: tokens })
    expect(refunded.value[0].used).toEqual({ requests: 1, tokens: 0 })
  }, 60_000)
})

// The subject is part of a storage key: unchecked, a template string made 42, ['42'] and '42' one
// subject, null the subject 'null', and a version 1 call with a subject ran as the tenant's alone.
describe('TenantQuotaObject: a malformed subject', () => {
  const tenantLimits = { limits: [{ window: 'minute', requests: 100 }] }
  const subjectLimits = { limits: [{ window: 'minute', requests: 1 }] }
  const consume = (id: string, subject: unknown, extra: Record<string, unknown> = {}) =>
    rawq(id, {
      v: PROTOCOL_VERSION,
      op: 'consume',
      config: tenantLimits,
      subject,
      subjectConfig: subjectLimits,
      cost: { requests: 1, tokens: 0 },
      ...extra,
    })

  it("a subject that is not a valid id is invalid_subject, never another subject's state", async () => {
    const id = randomTenantId('subjtype')
    for (const [bad, lookalike] of [
      [42, '42'],
      [['key:a'], 'key:a'],
    ] as const) {
      // The look-alike spends its one request of the minute; the bad call must not be its denial.
      expect((await consume(id, lookalike)).value.allowed).toBe(true)
      expect(await consume(id, bad)).toMatchObject({ ok: false, error: { code: 'invalid_subject' } })
    }
    const long = await consume(id, 'x'.repeat(3000))
    expect(long).toMatchObject({ ok: false, error: { code: 'invalid_subject' } })
    const peek = await rawq(id, { op: 'peek', config: tenantLimits })
    expect(peek.value[0].used.requests).toBe(2)
  }, 60_000)

  it("a reset naming subject null is refused and resets nothing of subject 'null'", async () => {
    const id = randomTenantId('subjnull')
    expect((await consume(id, 'null')).value.allowed).toBe(true)
    expect(await rawq(id, { v: PROTOCOL_VERSION, op: 'reset', subject: null })).toMatchObject({
      ok: false,
      error: { code: 'invalid_subject' },
    })
    expect((await consume(id, 'null')).value.allowed).toBe(false)
  }, 60_000)

  it('a version 1 call or a call without the subject config is refused, not run as the tenant alone', async () => {
    const id = randomTenantId('subjv1')
    const refusals = [
      await consume(id, 'key:a', { v: BASE_PROTOCOL_VERSION }),
      await consume(id, 'key:a', { subjectConfig: undefined }),
      await consume(id, 'key:a', { subjectConfig: 'limits' }),
    ]
    for (const refused of refusals) expect(refused.ok).toBe(false)
    expect(((await workerd().inspect(id)) as { keys: unknown[] }).keys).toEqual([])
    expect((await consume(id, 'key:a')).value.allowed).toBe(true)
    expect((await consume(id, 'key:a')).value.allowed).toBe(false)
  }, 60_000)
})
