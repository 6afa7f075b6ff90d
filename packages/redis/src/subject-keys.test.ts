import { ManualClock, type QuotaConfig, TenantBackendError } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { losingReplies } from '../test/helpers/losing-replies'
import { keysUnder, REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT, resetMarkerKey } from './quota-scripts'
import { RedisRateLimiter } from './rate-limiter'
import { ReceiptIds } from './receipts'
import { FIXED_SUBJECT_SCRIPT } from './subject-scripts'

// Subject ids may contain ':' and are chosen by end users (`model:<X-Model header>`), so no key
// may be named by appending to a subject's key: `<subject hash>:reset` is the hash of the subject
// `<id>:reset`. And a store prefix may hold anything of `[A-Za-z0-9:._-]`, `:op:1:` included.

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)

const config: QuotaConfig = {
  limits: [{ window: 'day', requests: 1000 }],
  subjects: [{ match: '*', limits: [{ window: 'month', requests: 50 }] }],
}

const algorithms = ['fixed', 'sliding'] as const

describe.runIf(REDIS_URL)('subject ids never name another key', () => {
  const { client: redis, prefix } = useTestRedis('subject-keys')

  function setup(algorithm: 'fixed' | 'sliding') {
    const provider = new TestConfigProvider()
    const id = randomTenantId('sk')
    provider.setQuota(id, config)
    const client = losingReplies(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, {
      redis: client,
      clock: new ManualClock(T0),
      prefix,
      timeoutMs: 5_000,
      algorithm,
    })
    const key = `{${prefix}:${id}}:${algorithm === 'fixed' ? 'f' : 's10'}`
    const consume = (subject: string) => manager.consume(id, { subject })
    /** Requests the subject's window counts, and the tenant's. */
    const used = async (subject?: string) =>
      (await manager.peek(id, subject === undefined ? undefined : { subject })).windows[0]!.used.requests
    /** A consume of `subject` whose reply is lost once Redis has run it. */
    const consumeLosingReply = async (subject: string) => {
      const lost = client.loseNext()
      const outcome = consume(subject).then(
        () => 'answered',
        (error: unknown) => error,
      )
      // A consume that fails on Redis itself never reaches `ran`: its error is the outcome.
      await Promise.race([lost.ran, outcome])
      return { lose: lost.lose, outcome }
    }
    return { id, key, manager, consume, used, consumeLosingReply }
  }

  it.each(algorithms)('%s: resetting subject S leaves the subject "S:reset" alone', async (algorithm) => {
    const t = setup(algorithm)
    expect((await t.consume('model:gpt:reset')).allowed).toBe(true)
    expect((await t.consume('model:gpt:reset')).allowed).toBe(true)
    expect((await t.consume('model:gpt')).allowed).toBe(true)
    await t.manager.reset(t.id, { subject: 'model:gpt' })
    // Before, the reset wrote its marker over the hash of "model:gpt:reset": WRONGTYPE from then on.
    expect(await redis.type(`${t.key}:subject:model:gpt:reset`)).toBe('hash')
    expect(await redis.type(resetMarkerKey(t.key, 'model:gpt'))).toBe('string')
    expect(await t.used('model:gpt:reset')).toBe(2)
    expect((await t.consume('model:gpt:reset')).allowed).toBe(true)
    expect(await t.used('model:gpt:reset')).toBe(3)
    expect(await t.used('model:gpt')).toBe(0)
    expect(await t.used()).toBe(4)
  })

  it.each(algorithms)(
    '%s: a failed call on subject S is refunded in full while the subject "S:reset" holds state',
    async (algorithm) => {
      const t = setup(algorithm)
      await t.consume('model:gpt:reset')
      const call = await t.consumeLosingReply('model:gpt')
      expect(await t.used('model:gpt')).toBe(1)
      call.lose()
      expect(await call.outcome).toBeInstanceOf(TenantBackendError)
      await t.manager.drain()
      // Both shares back: the tenant's and the subject's.
      expect(await t.used('model:gpt')).toBe(0)
      expect(await t.used()).toBe(1)
      expect(await t.used('model:gpt:reset')).toBe(1)
    },
  )

  it('a subject evicted from the index leaves its stamp where no subject lives', async () => {
    const client = toScriptClient(redis)
    const key = `{${prefix}:${randomTenantId('sk')}}:f`
    const subjectKey = (s: string) => `${key}:subject:${s}`
    // A bound of two subjects: a third evicts the one whose hash expires first ("a": of equal
    // expiries, the first in order).
    const consume = (subject: string) =>
      FIXED_SUBJECT_SCRIPT.run(
        client,
        [key, subjectKey(subject), `${key}:subjects`],
        [String(T0), 'consume', subject, '2', '0', '1', '0', 'hour', '10', '0'],
      )
    await consume('a:reset')
    await consume('a')
    await consume('b')
    expect(await redis.exists(subjectKey('a'))).toBe(0)
    expect(await redis.get(resetMarkerKey(key, 'a'))).toBe(String(T0))
    expect(await redis.type(subjectKey('a:reset'))).toBe('hash')
    expect((await redis.hget(subjectKey('a:reset'), 'hour'))?.split(',')[1]).toBe('1')
  })

  it.each(algorithms)(
    '%s: whatever the subject ids, every key is a tenant hash, a subject hash, a marker, a receipt or the index',
    async (algorithm) => {
      const t = setup(algorithm)
      const subjects = [
        'x',
        'x:reset',
        'x:reset:reset',
        'reset',
        'reset:x',
        ':reset',
        'subjects',
        'subject:x',
        'x:subjects',
        'op:15000:abc',
        'x:op:1:y',
        'f',
        's10',
      ]
      const expected = new Map<string, number>()
      for (const [i, subject] of subjects.entries()) {
        expect((await t.consume(subject)).allowed).toBe(true)
        expect((await t.consume(subject)).allowed).toBe(true)
        if (i % 2 === 0) await t.manager.reset(t.id, { subject })
        expect((await t.consume(subject)).allowed).toBe(true)
        expected.set(subject, i % 2 === 0 ? 1 : 3)
        // A failed call, voided: refunded in full.
        const call = await t.consumeLosingReply(subject)
        call.lose()
        await call.outcome
      }
      await t.manager.drain()
      for (const [subject, count] of expected)
        expect([subject, await t.used(subject)]).toEqual([subject, count])

      const keys = (await keysUnder(redis, prefix)).filter((k) => k.startsWith(t.key))
      const types = new Map(await Promise.all(keys.map(async (k) => [k, await redis.type(k)] as const)))
      const kinds = new Map<string, string>([
        [t.key, 'hash'],
        [`${t.key}:subjects`, 'zset'],
        [resetMarkerKey(t.key), 'string'],
      ])
      for (const subject of subjects) {
        kinds.set(`${t.key}:subject:${subject}`, 'hash')
        kinds.set(resetMarkerKey(t.key, subject), 'string')
      }
      for (const [k, type] of types) {
        if (k.startsWith(`${t.key}:op:`)) expect([k, type]).toEqual([k, 'string'])
        else expect([k, type]).toEqual([k, kinds.get(k)])
      }
      // Every subject still has its hash, and every subject reset its own marker.
      for (const subject of subjects) expect(types.get(`${t.key}:subject:${subject}`)).toBe('hash')
      subjects.forEach((subject, i) => {
        if (i % 2 === 0) expect(types.get(resetMarkerKey(t.key, subject))).toBe('string')
      })
    },
  )

  describe('reset markers of the previous version (`<subject hash>:reset`)', () => {
    /** What the previous version's reset of a subject did: the hash gone, a marker beside it. */
    const previousReset = async (key: string, subject: string) => {
      await redis.del(`${key}:subject:${subject}`)
      await redis.set(`${key}:subject:${subject}:reset`, String(T0), 'PX', 3_600_000)
    }

    it.each([false, true])(
      'one written after a decision stops that decision’s refund from the counts after it (subject "S:reset" used in between: %s)',
      async (usedInBetween) => {
        const t = setup('fixed')
        const call = await t.consumeLosingReply('model:gpt')
        await previousReset(t.key, 'model:gpt')
        expect((await t.consume('model:gpt')).allowed).toBe(true)
        if (usedInBetween) {
          // The marker sat in that subject's key: it moves to model:gpt's own marker first.
          expect((await t.consume('model:gpt:reset')).allowed).toBe(true)
          expect(await redis.type(`${t.key}:subject:model:gpt:reset`)).toBe('hash')
          expect(Number(await redis.get(resetMarkerKey(t.key, 'model:gpt')))).toBeGreaterThan(T0)
        }
        call.lose()
        expect(await call.outcome).toBeInstanceOf(TenantBackendError)
        await t.manager.drain()
        // The subject's count is the one made after the reset; the tenant's share came back.
        expect(await t.used('model:gpt')).toBe(1)
        expect(await t.used()).toBe(usedInBetween ? 2 : 1)
      },
    )

    it('one written before a decision does not stop its refund', async () => {
      const t = setup('fixed')
      await previousReset(t.key, 'model:x')
      const call = await t.consumeLosingReply('model:x')
      call.lose()
      expect(await call.outcome).toBeInstanceOf(TenantBackendError)
      await t.manager.drain()
      expect(await t.used('model:x')).toBe(0)
      expect(await t.used()).toBe(0)
    })

    it.each(algorithms)('%s: one left in a subject’s key no longer fails that subject', async (algorithm) => {
      const t = setup(algorithm)
      await previousReset(t.key, 'a')
      // A peek, a consume, an adjust, a reset of the subject "a:reset" each work.
      expect(await t.used('a:reset')).toBe(0)
      expect(await redis.exists(`${t.key}:subject:a:reset`)).toBe(0)
      expect(Number(await redis.get(resetMarkerKey(t.key, 'a')))).toBeGreaterThan(T0)
      await previousReset(t.key, 'b')
      expect((await t.consume('b:reset')).allowed).toBe(true)
      expect(await t.used('b:reset')).toBe(1)
      await previousReset(t.key, 'c')
      await t.manager.adjust(t.id, { tokens: 5, subject: 'c:reset' })
      await previousReset(t.key, 'd')
      await t.manager.reset(t.id, { subject: 'd:reset' })
      expect(await redis.exists(`${t.key}:subject:d:reset`)).toBe(0)
      expect(Number(await redis.get(resetMarkerKey(t.key, 'd')))).toBeGreaterThan(T0)
    })
  })
})

describe.runIf(REDIS_URL)('receipts under a prefix that holds ":op:<digits>:"', () => {
  const { client: redis, prefix: base } = useTestRedis('receipt-prefix')
  const prefix = `${base}:op:1:x`

  it('live receiptTtlMs: a command run twice charges once', async () => {
    const client = toScriptClient(redis)
    const key = `{${prefix}:acme}:f`
    const receipt = new ReceiptIds().next(key)
    const args = [String(T0), 'consume', '1', '0', 'day', '100', '0']
    const first = (await FIXED_WINDOW_SCRIPT.run(
      client,
      [key, receipt, resetMarkerKey(key)],
      args,
    )) as unknown[]
    expect(await redis.pttl(receipt)).toBeGreaterThan(10_000)
    await new Promise((resolve) => setTimeout(resolve, 20))
    // The same command again (a client re-sending it): the recorded answer, nothing charged.
    expect(await FIXED_WINDOW_SCRIPT.run(client, [key, receipt, resetMarkerKey(key)], args)).toEqual(
      first.map(String),
    )
    expect((await redis.hget(key, 'day'))?.split(',')[1]).toBe('1')
  })

  it('the quota manager’s and the rate limiter’s receipts live receiptTtlMs, and a failed call is refunded', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rp')
    provider.setQuota(id, { limits: [{ window: 'day', requests: 100 }] })
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 10 })
    const client = losingReplies(toScriptClient(redis))
    const quotas = new RedisQuotaManager(provider, { redis: client, prefix, timeoutMs: 5_000 })
    const limiter = new RedisRateLimiter(provider, { redis, prefix, timeoutMs: 5_000 })
    await quotas.consume(id)
    await limiter.consume(id)
    const receipts = (await keysUnder(redis, base)).filter((k) => k.includes(`:${id}}`) && k.includes('}:'))
    const ops = receipts.filter((k) => /\}:[fb]:op:/.test(k))
    expect(ops).toHaveLength(2)
    for (const k of ops) expect(await redis.pttl(k)).toBeGreaterThan(10_000)

    const lost = client.loseNext()
    const outcome = quotas.consume(id).catch((error: unknown) => error)
    await lost.ran
    await new Promise((resolve) => setTimeout(resolve, 20))
    lost.lose()
    expect(await outcome).toBeInstanceOf(TenantBackendError)
    await quotas.drain()
    expect((await quotas.peek(id)).windows[0]!.used.requests).toBe(1)
  })
})
