// Quota consumes and rate-limit takes whose answer is lost after the object applied them: the
// managers void them by their op id, and the object takes the admission back exactly once. On
// workerd, with the fault hook that loses an answer after the object's write.
import { MAX_QUOTA_COUNT, ManualClock, type QuotaConfig, type QuotaLimit } from '@tenant/core'
import { randomTenantId, rejectionOf, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { BASE_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../src/protocol'
import { useWorkerd } from './workerd'

const workerd = useWorkerd()

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)
const MINUTE = 60_000

type Algorithm = { algorithm: 'fixed' } | { algorithm: 'sliding'; precision: number }
const algorithms: [string, Algorithm][] = [
  ['fixed', { algorithm: 'fixed' }],
  ['sliding', { algorithm: 'sliding', precision: 6 }],
]

function setup(
  algorithm: Algorithm,
  limits: QuotaLimit[] = [{ window: 'minute', requests: 2, tokens: 100 }],
) {
  const provider = new TestConfigProvider()
  const clock = new ManualClock(T0)
  const id = randomTenantId('lost')
  provider.setQuota(id, { limits })
  const quotas = workerd().quotaManager(provider, { clock, ...algorithm })
  const used = async (subject?: string) =>
    (await quotas.peek(id, subject === undefined ? undefined : { subject })).windows[0]!.used
  return { provider, clock, id, quotas, used }
}

const loseNextAnswer = (tenantId: string) => workerd().send({ kind: 'loseAnswer', tenantId })

describe.each(algorithms)(
  'DurableObjectQuotaManager (%s): a consume whose answer was lost',
  (_name, algorithm) => {
    it('fails, and the object takes its charge back: the usage is what it was before', async () => {
      const { id, quotas, used } = setup(algorithm)
      expect(await quotas.consume(id, { tokens: 10 })).toMatchObject({ allowed: true })
      await loseNextAnswer(id)
      const error = await rejectionOf(quotas.consume(id, { tokens: 30 }))
      expect(error).toMatchObject({ code: 'tenant_backend_unavailable', status: 503 })
      expect((error as Error).message).toMatch(/simulated lost answer/)
      // Applied (one call, one write more) and then voided (one void, one write).
      expect(await used()).toEqual({ requests: 1, tokens: 10 })
      expect(await workerd().inspect(id)).toMatchObject({ calls: 3, voids: 1, writes: 3 })
      // The second request of the minute is still there to be had, and the third is refused.
      expect(await quotas.consume(id)).toMatchObject({ allowed: true, remaining: { requests: 0 } })
      expect((await quotas.consume(id)).allowed).toBe(false)
    })

    it('with a subject, takes the charge back from the tenant and the subject', async () => {
      const config: QuotaConfig = {
        limits: [{ window: 'minute', requests: 5 }],
        subjects: [{ match: 'key:*', limits: [{ window: 'minute', requests: 1 }] }],
      }
      const { provider, id, quotas, used } = setup(algorithm)
      provider.setQuota(id, config)
      await quotas.consume(id)
      await loseNextAnswer(id)
      expect(await rejectionOf(quotas.consume(id, { subject: 'key:a' }))).toMatchObject({ status: 503 })
      expect(await used()).toMatchObject({ requests: 1 })
      expect(await used('key:a')).toMatchObject({ requests: 0 })
      expect(await quotas.consume(id, { subject: 'key:a' })).toMatchObject({ allowed: true })
    })

    it('takes back what a saturated admission added, not its cost (tenant and subject)', async () => {
      // Tokens unlimited: a count near MAX_QUOTA_COUNT takes only what keeps it within the bound.
      const { provider, id, quotas, used } = setup(algorithm, [{ window: 'day', requests: 100 }])
      provider.setQuota(id, {
        limits: [{ window: 'day', requests: 100 }],
        subjects: [{ match: 'key:*', limits: [{ window: 'hour', requests: 10 }] }],
      })
      await quotas.consume(id, { tokens: MAX_QUOTA_COUNT - 100, subject: 'key:a' })
      const before = [await used(), await used('key:a')]
      expect(before).toEqual([
        { requests: 1, tokens: MAX_QUOTA_COUNT - 100 },
        { requests: 1, tokens: MAX_QUOTA_COUNT - 100 },
      ])
      for (const subject of [undefined, 'key:a']) {
        await loseNextAnswer(id)
        expect(await rejectionOf(quotas.consume(id, { tokens: 1000, subject }))).toMatchObject({
          status: 503,
        })
        expect([await used(), await used('key:a')]).toEqual(before)
      }
    })

    it('a consume that failed before the object ran it is voided too, and charges nothing', async () => {
      const { id, quotas, used } = setup(algorithm)
      await workerd().send({ kind: 'break', tenantId: id })
      expect(await rejectionOf(quotas.consume(id))).toMatchObject({ status: 503 })
      expect(await used()).toEqual({ requests: 0, tokens: 0 })
      // The void found nothing to take back: it remembered the id and wrote nothing.
      expect(await workerd().inspect(id)).toMatchObject({ calls: 2, voids: 1, writes: 0 })
    })
  },
)

describe('the void of a lost answer', () => {
  it('is sent again while it fails, up to 3 times in all', async () => {
    const { id, quotas, used } = setup({ algorithm: 'fixed' })
    await loseNextAnswer(id)
    await workerd().send({ kind: 'breakVoids', tenantId: id, times: 2 })
    expect(await rejectionOf(quotas.consume(id))).toMatchObject({ status: 503 })
    expect(await workerd().inspect(id)).toMatchObject({ voids: 3 })
    expect(await used()).toEqual({ requests: 0, tokens: 0 })
  })

  it('is given up after 3 failed tries, and the charge then stays (README: other gaps)', async () => {
    const { id, quotas, used } = setup({ algorithm: 'fixed' })
    await loseNextAnswer(id)
    await workerd().send({ kind: 'breakVoids', tenantId: id, times: 3 })
    expect(await rejectionOf(quotas.consume(id))).toMatchObject({ status: 503 })
    expect(await workerd().inspect(id)).toMatchObject({ voids: 3 })
    expect(await used()).toEqual({ requests: 1, tokens: 0 })
  })
})

describe('DurableObjectRateLimiter: a take whose answer was lost', () => {
  it('fails, and the object gives the tokens back', async () => {
    const provider = new TestConfigProvider()
    const clock = new ManualClock(T0)
    const id = randomTenantId('lostrate')
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 3 })
    const limiter = workerd().rateLimiter(provider, { clock })
    expect(await limiter.consume(id)).toMatchObject({ allowed: true, remaining: 2 })
    await loseNextAnswer(id)
    expect(await rejectionOf(limiter.consume(id, { cost: 2 }))).toMatchObject({
      code: 'tenant_backend_unavailable',
      status: 503,
    })
    expect(await workerd().inspect(id)).toMatchObject({ voids: 1 })
    // Two tokens are left, as before the failed take.
    expect(await limiter.consume(id, { cost: 2 })).toMatchObject({ allowed: true, remaining: 0 })
    expect((await limiter.consume(id)).allowed).toBe(false)
  })
})

// The object's side, through calls sent as they are: an op id run twice, voided first, voided twice.
describe.each(algorithms)('TenantQuotaObject op ids (%s)', (_name, algorithm) => {
  const config: QuotaConfig = { limits: [{ window: 'minute', requests: 5, tokens: 100 }] }
  const consume = (id: string, opId: string, now = T0, tokens = 7) =>
    workerd().send({
      kind: 'raw',
      tenantId: id,
      call: {
        v: BASE_PROTOCOL_VERSION,
        op: 'consume',
        precision: 10,
        ...algorithm,
        config,
        now,
        cost: { requests: 1, tokens },
        opId,
      },
    }) as Promise<{ ok: boolean; value?: { allowed: boolean }; error?: { code: string } }>
  const voidOp = (id: string, opId: string, now = T0) =>
    workerd().send({
      kind: 'raw-void',
      tenantId: id,
      call: { v: BASE_PROTOCOL_VERSION, kind: 'quota', opId, now },
    })
  const usedAt = async (id: string, now = T0) => {
    const reply = (await workerd().send({
      kind: 'raw',
      tenantId: id,
      call: { v: BASE_PROTOCOL_VERSION, op: 'peek', precision: 10, ...algorithm, config, now },
    })) as { value: { used: { requests: number; tokens: number } }[] }
    return reply.value[0]!.used
  }

  it('a consume sent twice with one op id charges once and answers the first decision again', async () => {
    const id = randomTenantId('twice')
    const first = await consume(id, 'op-1')
    expect(first).toMatchObject({
      ok: true,
      value: { allowed: true, remaining: { requests: 4, tokens: 93 } },
    })
    const before = await workerd().inspect(id)
    // Later, with other traffic in between: still the first answer, and no charge, no write.
    await consume(id, 'op-2', T0 + 1000)
    expect(await consume(id, 'op-1', T0 + 2000)).toEqual(first)
    expect(await usedAt(id)).toEqual({ requests: 2, tokens: 14 })
    expect((await workerd().inspect(id)).writes).toBe(before.writes + 1)
  })

  it('a void that arrives before its consume makes the consume charge nothing', async () => {
    const id = randomTenantId('early')
    expect(await voidOp(id, 'op-early')).toEqual({ ok: true, value: { refunded: false } })
    const late = await consume(id, 'op-early')
    expect(late).toMatchObject({ ok: false, error: { code: 'tenant_backend_unavailable' } })
    expect(await usedAt(id)).toEqual({ requests: 0, tokens: 0 })
    expect(await workerd().inspect(id)).toMatchObject({ writes: 0, keys: [] })
    // Another id is charged as usual.
    expect(await consume(id, 'op-other')).toMatchObject({ ok: true, value: { allowed: true } })
  })

  it('a void sent twice takes the admission back once', async () => {
    const id = randomTenantId('voidtwice')
    await consume(id, 'op-a')
    await consume(id, 'op-b')
    expect(await voidOp(id, 'op-a')).toEqual({ ok: true, value: { refunded: true } })
    const afterFirst = await workerd().inspect(id)
    expect(await voidOp(id, 'op-a')).toEqual({ ok: true, value: { refunded: false } })
    expect(await usedAt(id)).toEqual({ requests: 1, tokens: 7 })
    expect((await workerd().inspect(id)).writes).toBe(afterFirst.writes)
    // A voided id sent again charges nothing either.
    expect(await consume(id, 'op-a')).toMatchObject({ ok: false })
    expect(await usedAt(id)).toEqual({ requests: 1, tokens: 7 })
  })

  it('never takes a charge back from a later window, or from state stored anew after a reset', async () => {
    const id = randomTenantId('later')
    await consume(id, 'op-old', T0)
    // Two minutes on, the admission's window (or bucket) is over; the usage now is another's.
    const later = T0 + 2 * MINUTE
    await consume(id, 'op-new', later)
    expect(await voidOp(id, 'op-old', later)).toEqual({ ok: true, value: { refunded: false } })
    expect(await usedAt(id, later)).toEqual({ requests: 1, tokens: 7 })

    const reset = randomTenantId('reset')
    await consume(reset, 'op-before')
    await workerd().send({
      kind: 'raw',
      tenantId: reset,
      call: { v: BASE_PROTOCOL_VERSION, op: 'reset', precision: 10, ...algorithm },
    })
    await consume(reset, 'op-after')
    expect(await voidOp(reset, 'op-before')).toEqual({ ok: true, value: { refunded: false } })
    expect(await usedAt(reset)).toEqual({ requests: 1, tokens: 7 })
  })
})

describe('TenantQuotaObject op ids (token bucket)', () => {
  const config = { requestsPerSecond: 1, burst: 4 }
  const take = (id: string, opId: string, now: number, cost = 1) =>
    workerd().send({
      kind: 'raw-rate',
      tenantId: id,
      call: { v: BASE_PROTOCOL_VERSION, config, cost, now, opId },
    }) as Promise<{ ok: boolean; value?: { allowed: boolean; remaining: number } }>
  const voidOp = (id: string, opId: string, now: number) =>
    workerd().send({
      kind: 'raw-void',
      tenantId: id,
      call: { v: PROTOCOL_VERSION, kind: 'rateLimit', opId, now },
    })
  // A take of 0 reads the level without changing it.
  const level = async (id: string, now: number) =>
    (await take(id, `peek-${now}-${Math.random()}`, now, 0)).value!.remaining

  it('a take sent twice charges once; voided twice, it gives back once', async () => {
    const id = randomTenantId('bucket')
    const first = await take(id, 'take-1', T0, 2)
    expect(first).toMatchObject({ ok: true, value: { allowed: true, remaining: 2 } })
    expect(await take(id, 'take-1', T0, 2)).toEqual(first)
    expect(await level(id, T0)).toBe(2)
    expect(await voidOp(id, 'take-1', T0)).toEqual({ ok: true, value: { refunded: true } })
    expect(await voidOp(id, 'take-1', T0)).toEqual({ ok: true, value: { refunded: false } })
    expect(await level(id, T0)).toBe(4)
  })

  it('a void before its take makes the take charge nothing', async () => {
    const id = randomTenantId('bucketearly')
    expect(await voidOp(id, 'take-early', T0)).toEqual({ ok: true, value: { refunded: false } })
    expect(await take(id, 'take-early', T0, 3)).toMatchObject({ ok: false })
    expect(await level(id, T0)).toBe(4)
  })

  it('after a later take, gives back only what the cap cannot have wasted', async () => {
    // Burst 4 at 1/s: X takes 3 (1 left), Y takes 3 two seconds later (0 left). Without X the
    // bucket sat full until Y, which would have left 1: 1 is owed, not 3.
    const id = randomTenantId('bucketlater')
    expect(await take(id, 'take-x', T0, 3)).toMatchObject({ value: { allowed: true, remaining: 1 } })
    expect(await take(id, 'take-y', T0 + 2000, 3)).toMatchObject({ value: { allowed: true, remaining: 0 } })
    expect(await voidOp(id, 'take-x', T0 + 2000)).toEqual({ ok: true, value: { refunded: true } })
    expect(await level(id, T0 + 2000)).toBe(1)
    // Y then owes the rest: without X and Y the bucket is full.
    expect(await voidOp(id, 'take-y', T0 + 2000)).toEqual({ ok: true, value: { refunded: true } })
    expect(await level(id, T0 + 2000)).toBe(4)
  })

  it('gives every take of a burst back, whatever the order of the voids', async () => {
    const id = randomTenantId('bucketburst')
    for (const n of [1, 2, 3]) await take(id, `burst-${n}`, T0, 1)
    expect(await level(id, T0)).toBe(1)
    for (const n of [2, 1, 3]) {
      expect(await voidOp(id, `burst-${n}`, T0 + 1)).toEqual({ ok: true, value: { refunded: true } })
    }
    expect(await level(id, T0 + 1)).toBe(4)
  })

  it('gives nothing back once a take followed a refund made since the take', async () => {
    // A and B take 2 each (0 left); A's void gives 2 back; C takes 2: it may have taken A's
    // tokens, a level B's line does not show, so B's void gives nothing (it could over-credit).
    const id = randomTenantId('bucketrefundtake')
    await take(id, 'take-a', T0, 2)
    await take(id, 'take-b', T0, 2)
    expect(await voidOp(id, 'take-a', T0)).toEqual({ ok: true, value: { refunded: true } })
    await take(id, 'take-c', T0 + 300, 2)
    expect(await voidOp(id, 'take-b', T0 + 300)).toEqual({ ok: true, value: { refunded: false } })
    expect(await level(id, T0 + 300)).toBe(0)
  })

  it('gives back only what the cap left room for, while no other take ran', async () => {
    const id = randomTenantId('bucketcap')
    await take(id, 'take-x', T0, 3)
    // 2 s later the bucket holds 3: without the take it would be full, 1 more.
    expect(await voidOp(id, 'take-x', T0 + 2000)).toEqual({ ok: true, value: { refunded: true } })
    expect(await level(id, T0 + 2000)).toBe(4)
    expect(await take(id, 'take-z', T0 + 2000, 4)).toMatchObject({ value: { allowed: true, remaining: 0 } })
  })

  it('keeps quota op ids and rate-limit op ids apart', async () => {
    const id = randomTenantId('bucketkind')
    const quota = {
      v: BASE_PROTOCOL_VERSION,
      op: 'consume',
      algorithm: 'fixed',
      precision: 10,
      config: { limits: [{ window: 'minute', requests: 5 }] },
      now: T0,
      cost: { requests: 1, tokens: 0 },
      opId: 'same-id',
    }
    expect(await workerd().send({ kind: 'raw', tenantId: id, call: quota })).toMatchObject({
      value: { allowed: true, remaining: { requests: 4 } },
    })
    // The take with the quota's id is a take of its own, charged and answered as one.
    expect(await take(id, 'same-id', T0, 2)).toMatchObject({
      ok: true,
      value: { allowed: true, remaining: 2 },
    })
    // Voiding it as a take gives the tokens back and leaves the quota's admission alone.
    expect(await voidOp(id, 'same-id', T0)).toEqual({ ok: true, value: { refunded: true } })
    expect(await level(id, T0)).toBe(4)
    const peek = { ...quota, op: 'peek' }
    expect(await workerd().send({ kind: 'raw', tenantId: id, call: peek })).toMatchObject({
      value: [{ used: { requests: 1 } }],
    })
    // A void names its kind.
    expect(
      await workerd().send({
        kind: 'raw-void',
        tenantId: id,
        call: { v: PROTOCOL_VERSION, opId: 'same-id', now: T0 },
      }),
    ).toMatchObject({ ok: false, error: { code: 'tenant_backend_unavailable' } })
  })

  it('gives nothing back once the bucket was full again after the take', async () => {
    const id = randomTenantId('bucketfull')
    await take(id, 'take-old', T0, 2)
    // Full again 2 s later; a new take of 3 leaves 1, none of it the old take's.
    await take(id, 'take-new', T0 + 5000, 3)
    expect(await voidOp(id, 'take-old', T0 + 5000)).toEqual({ ok: true, value: { refunded: false } })
    expect(await level(id, T0 + 5000)).toBe(1)
  })
})
