import { ManualClock, type QuotaConfig, TenantBackendError } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { losingReplies } from '../test/helpers/losing-replies'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { FIXED_WINDOW_SCRIPT, RESET_SCRIPT } from './quota-scripts'
import { FIXED_SUBJECT_SCRIPT } from './subject-scripts'

// A void refunds an admission only into counts that hold its charge: a reset between the decision
// and the void means they do not. Resets and decisions are ordered by the reset stamp the receipt
// records, not by their times, so a ManualClock that never moves (every call in one millisecond)
// is the hardest case: the order of calls is all there is.

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)

const config: QuotaConfig = {
  limits: [{ window: 'day', requests: 100, tokens: 10_000 }],
  subjects: [{ match: 'key:*', limits: [{ window: 'hour', requests: 50 }] }],
}

type Kind = 'fixed' | 'sliding' | 'subject'

describe.runIf(REDIS_URL)('receipts: a void and a reset in the same millisecond', () => {
  const { client: redis, prefix } = useTestRedis('receipt-resets')

  function setup(kind: Kind) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('rr')
    provider.setQuota(id, config)
    const client = losingReplies(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, {
      redis: client,
      // Never advanced: the reset and every decision share one millisecond.
      clock: new ManualClock(T0),
      prefix,
      timeoutMs: 5_000,
      algorithm: kind === 'sliding' ? 'sliding' : 'fixed',
    })
    const cost = kind === 'subject' ? { subject: 'key:1' } : {}
    const consume = () => manager.consume(id, cost)
    /** Requests counted in every window of the decision (the tenant's and the subject's agree). */
    const used = async () => {
      const { windows } = await manager.peek(id, kind === 'subject' ? { subject: 'key:1' } : undefined)
      const counts = new Set(windows.map((w) => w.used.requests))
      expect(counts.size).toBe(1)
      return [...counts][0]!
    }
    /** Starts a consume whose reply will be lost, once Redis has run it. */
    const consumeLosingReply = async () => {
      const lost = client.loseNext()
      const outcome = consume().then(
        () => 'answered',
        (error: unknown) => error,
      )
      await lost.ran
      return { lose: lost.lose, outcome }
    }
    return { id, manager, consume, used, consumeLosingReply }
  }

  it.each(['fixed', 'sliding', 'subject'] as const)(
    '%s: an admission right after a reset, in its millisecond, is refunded when its call fails',
    async (kind) => {
      const t = setup(kind)
      await t.consume()
      await t.manager.reset(t.id)
      expect(await t.used()).toBe(0)
      const call = await t.consumeLosingReply()
      expect(await t.used()).toBe(1)
      call.lose()
      expect(await call.outcome).toBeInstanceOf(TenantBackendError)
      await t.manager.drain()
      expect(await t.used()).toBe(0)
    },
  )

  it.each(['fixed', 'sliding', 'subject'] as const)(
    '%s: an admission right before a reset, in its millisecond, is not refunded from the counts after it',
    async (kind) => {
      const t = setup(kind)
      const call = await t.consumeLosingReply()
      await t.manager.reset(t.id)
      expect(await t.used()).toBe(0)
      // Counts made after the reset, which the lost admission never charged.
      await t.consume()
      call.lose()
      expect(await call.outcome).toBeInstanceOf(TenantBackendError)
      await t.manager.drain()
      expect(await t.used()).toBe(1)
    },
  )

  it('subject: a reset of the subject alone keeps the refund of the tenant’s share', async () => {
    const t = setup('subject')
    const call = await t.consumeLosingReply()
    await t.manager.reset(t.id, { subject: 'key:1' })
    await t.consume()
    call.lose()
    expect(await call.outcome).toBeInstanceOf(TenantBackendError)
    await t.manager.drain()
    // The tenant's hash was not reset: its share goes back. The subject's was: it keeps the new count.
    expect((await t.manager.peek(t.id)).windows[0]!.used.requests).toBe(1)
    expect((await t.manager.peek(t.id, { subject: 'key:1' })).windows[0]!.used.requests).toBe(1)
  })
})

describe.runIf(REDIS_URL)('reset stamps', () => {
  const { client: redis, prefix } = useTestRedis('reset-stamps')
  const client = toScriptClient(redis)
  const now = String(T0)
  const args = (op: string) => [now, op, '1', '7', 'day', '100', '0']
  const fresh = () => `{${prefix}:${randomTenantId('rs')}}:f`
  const reset = (key: string) => RESET_SCRIPT.run(client, [key], [now])
  const requests = async (key: string) => Number((await redis.hget(key, 'day'))?.split(',')[1] ?? 0)

  it('every reset of a hash writes a larger stamp, within one millisecond too', async () => {
    const key = fresh()
    const stamps: string[] = []
    for (let i = 0; i < 3; i++) {
      await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:${i}`], args('consume'))
      await reset(key)
      stamps.push((await redis.get(`${key}:reset`))!)
    }
    expect(stamps).toEqual([String(T0), String(T0 + 1), String(T0 + 2)])
  })

  it('a reset marker that expires before a receipt that recorded it is kept as long as the receipt', async () => {
    const key = fresh()
    await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:a`], args('consume'))
    await reset(key)
    await redis.pexpire(`${key}:reset`, 500)
    await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:b`], args('consume'))
    expect(await redis.pttl(`${key}:reset`)).toBeGreaterThan(10_000)
  })

  describe('state of the previous version', () => {
    it('a millisecond marker is a stamp: an admission after it, in its millisecond, is refunded', async () => {
      const key = fresh()
      // The previous version's reset: the marker holds the reset time.
      await redis.set(`${key}:reset`, now, 'PX', 60_000)
      const keys = [key, `${key}:op:a`]
      await FIXED_WINDOW_SCRIPT.run(client, keys, args('consume'))
      expect(await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', ...args('x').slice(2)])).toEqual([
        'void',
        1,
      ])
      expect(await requests(key)).toBe(0)
      // The void emptied the hash, which is a new stamp past it; a reset then writes the next one.
      expect(await redis.get(`${key}:reset`)).toBe(String(T0 + 1))
      await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:b`], args('consume'))
      await reset(key)
      expect(await redis.get(`${key}:reset`)).toBe(String(T0 + 2))
    })

    it('a receipt without stamps is refunded by its decision time: never across a reset', async () => {
      const key = fresh()
      const keys = [key, `${key}:op:a`]
      await FIXED_WINDOW_SCRIPT.run(client, keys, args('consume'))
      // What the previous version recorded: the reply alone.
      const { r: reply } = JSON.parse((await redis.get(keys[1]!))!) as { r: unknown }
      await redis.set(keys[1]!, JSON.stringify(reply), 'PX', 60_000)
      await reset(key)
      await FIXED_WINDOW_SCRIPT.run(client, [key, `${key}:op:b`], args('consume'))
      await FIXED_WINDOW_SCRIPT.run(client, keys, ['', 'void', ...args('x').slice(2)])
      expect(await requests(key)).toBe(1)
      // Such a receipt decided after the reset (in a later millisecond) is refunded.
      const later = String(T0 + 1)
      const lateKeys = [key, `${key}:op:c`]
      await FIXED_WINDOW_SCRIPT.run(client, lateKeys, [later, ...args('consume').slice(1)])
      const { r: lateReply } = JSON.parse((await redis.get(lateKeys[1]!))!) as { r: unknown }
      await redis.set(lateKeys[1]!, JSON.stringify(lateReply), 'PX', 60_000)
      await FIXED_WINDOW_SCRIPT.run(client, lateKeys, ['', 'void', ...args('x').slice(2)])
      expect(await requests(key)).toBe(1)
    })
  })

  it('a subject evicted from the index leaves a stamp, so a void does not refund its successor’s counts', async () => {
    const key = fresh()
    const subjectKey = (s: string) => `${key}:subject:${s}`
    // A bound of one subject: a second one evicts the first.
    const consume = (subject: string, receipt: string) =>
      FIXED_SUBJECT_SCRIPT.run(
        client,
        [key, subjectKey(subject), `${key}:subjects`, `${key}:op:${receipt}`],
        [now, 'consume', subject, '1', '0', '1', '0', 'hour', '10', '0'],
      )
    await consume('a', 'lost')
    await consume('b', 'b')
    expect(await redis.exists(subjectKey('a'))).toBe(0)
    await consume('a', 'again')
    await FIXED_SUBJECT_SCRIPT.run(
      client,
      [key, subjectKey('a'), `${key}:subjects`, `${key}:op:lost`],
      ['', 'void', 'a', '1', '0', '1', '0', 'hour', '10', '0'],
    )
    expect((await redis.hget(subjectKey('a'), 'hour'))?.split(',')[1]).toBe('1')
  })
})
