// Malformed calls sent straight to the object (as a Worker of another build, or a bug, would): the
// object checks them itself, with typed errors, and stores nothing for them.
import { randomTenantId } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { useWorkerd } from '../test/workerd'
import { BASE_PROTOCOL_VERSION } from './protocol'

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
})
