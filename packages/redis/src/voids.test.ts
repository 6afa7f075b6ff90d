import {
  MAX_QUOTA_COUNT,
  ManualClock,
  type QuotaConfig,
  type QuotaCost,
  TenantBackendError,
} from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { describe, expect, it } from 'vitest'
import { losingReplies } from '../test/helpers/losing-replies'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { type RedisScriptClient, toScriptClient } from './client'
import { RedisQuotaManager } from './quota-manager'
import { resetMarkerKey } from './quota-scripts'
import { RECEIPT_TTL_RANGE_MS } from './receipts'

// What a void (or, without receipts, a late reply's refund) takes back, and what keeps it from
// taking more: the admission's own additions (a count saturated at MAX_QUOTA_COUNT took less than
// the cost), reset stamps that outlive every receipt recorded before them, and a new stamp when a
// hash is emptied and made anew. Every test runs on a ManualClock that never moves unless told:
// real time passes, the windows do not, so nothing here waits for a window or a TTL.

const T0 = Date.UTC(2030, 2, 14, 9, 26, 10)
const MINUTE = 60_000
const MAX = MAX_QUOTA_COUNT

type Algorithm = 'fixed' | 'sliding'

/** A client that holds the reply of the next quota consume until the test releases it. */
function holdingReplies(inner: RedisScriptClient) {
  let held: { ran: () => void; release: Promise<void> } | undefined
  const wrap =
    (run: (first: string, keys: string[], args: string[]) => Promise<unknown>) =>
    async (first: string, keys: string[], args: string[]) => {
      const reply = await run(first, keys, args)
      const hold = held
      if (hold === undefined || args[1] !== 'consume') return reply
      held = undefined
      hold.ran()
      await hold.release
      return reply
    }
  return {
    evalScriptSha: wrap((sha, keys, args) => inner.evalScriptSha(sha, keys, args)),
    evalScript: wrap((src, keys, args) => inner.evalScript(src, keys, args)),
    holdNext() {
      let ran!: () => void
      let release!: () => void
      const done = new Promise<void>((resolve) => (ran = resolve))
      held = { ran, release: new Promise<void>((resolve) => (release = resolve)) }
      return { ran: done, release }
    },
  }
}

describe.runIf(REDIS_URL)('voids', () => {
  const { client: redis, prefix } = useTestRedis('voids')

  function setup(config: QuotaConfig, algorithm: Algorithm, receiptTtlMs?: number) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('vd')
    provider.setQuota(id, config)
    const clock = new ManualClock(T0)
    const client = losingReplies(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, {
      redis: client,
      clock,
      prefix,
      timeoutMs: 5_000,
      algorithm,
      ...(receiptTtlMs === undefined ? {} : { receiptTtlMs }),
    })
    const key = `{${prefix}:${id}}:${algorithm === 'fixed' ? 'f' : 's10'}`
    const used = async (subject?: string) =>
      (await manager.peek(id, subject === undefined ? undefined : { subject })).windows.map((w) => w.used)
    /** A consume whose reply is lost once Redis has run it; `fail()` fails it, and its void follows. */
    const consumeLosingReply = async (cost: QuotaCost) => {
      const lost = client.loseNext()
      const outcome = manager.consume(id, cost).then(
        () => 'answered',
        (error: unknown) => error,
      )
      await lost.ran
      return {
        fail: async () => {
          lost.lose()
          expect(await outcome).toBeInstanceOf(TenantBackendError)
          await manager.drain()
        },
      }
    }
    return { id, clock, manager, key, used, consumeLosingReply }
  }

  /** A manager without receipts whose client holds a consume's reply until after its timeout. */
  function lateReplies(config: QuotaConfig, algorithm: Algorithm) {
    const provider = new TestConfigProvider()
    const id = randomTenantId('late')
    provider.setQuota(id, config)
    const client = holdingReplies(toScriptClient(redis))
    const manager = new RedisQuotaManager(provider, {
      redis: client,
      clock: new ManualClock(T0),
      prefix,
      timeoutMs: 50,
      algorithm,
      receipts: false,
    })
    const key = `{${prefix}:${id}}:${algorithm === 'fixed' ? 'f' : 's10'}`
    /** A consume whose caller is told it failed, whose reply then comes, and is refunded. */
    const consumeRepliedLate = async (cost: QuotaCost) => {
      const held = client.holdNext()
      const outcome = manager.consume(id, cost).then(
        () => 'answered',
        (error: unknown) => error,
      )
      await held.ran
      expect(await outcome).toBeInstanceOf(TenantBackendError)
      held.release()
      await manager.drain()
    }
    return { id, manager, key, consumeRepliedLate }
  }

  describe.each(['fixed', 'sliding'] as const)('%s', (algorithm) => {
    it('a void takes back what a saturated admission added, not its cost (tenant and subject)', async () => {
      // Tokens unlimited: a count near MAX_QUOTA_COUNT takes only what keeps it within the bound.
      const t = setup(
        {
          limits: [
            { window: 'minute', requests: 100 },
            { window: 'day', requests: 100 },
          ],
          subjects: [{ match: 'key:*', limits: [{ window: 'hour', requests: 10 }] }],
        },
        algorithm,
      )
      await t.manager.consume(t.id, { tokens: MAX - 100, subject: 'key:a' })
      // A new minute: the day's count is near the bound, the minute's is not.
      t.clock.advance(2 * MINUTE)
      const before = [await t.used(), await t.used('key:a')]
      expect(before[0]).toEqual([
        { requests: 0, tokens: 0 },
        { requests: 1, tokens: MAX - 100 },
      ])
      for (const subject of [undefined, 'key:a']) {
        const call = await t.consumeLosingReply({ tokens: 1000, subject })
        // The minute took all 1000, the day (and the subject's hour) 100.
        expect((await t.used())[1]).toEqual({ requests: 2, tokens: MAX })
        await call.fail()
        expect([await t.used(), await t.used('key:a')]).toEqual(before)
      }
    })

    it('without receipts, a late reply is refunded of what the admission added', async () => {
      const late = lateReplies({ limits: [{ window: 'day', requests: 100 }] }, algorithm)
      await late.manager.consume(late.id, { tokens: MAX - 100 })
      // The caller is told it failed; then the reply comes, and its admission is refunded.
      await late.consumeRepliedLate({ tokens: 1000 })
      expect((await late.manager.peek(late.id)).windows[0]!.used).toEqual({ requests: 1, tokens: MAX - 100 })
    })

    it("a void that empties a subject's hash takes it out of the subject index, with and without receipts", async () => {
      // Left in the index, it would hold one of the 10,000 places until its old expiry (a day
      // here), and a new subject past the bound would evict a live one in its stead.
      const config: QuotaConfig = {
        limits: [],
        subjects: [{ match: 'd:*', limits: [{ window: 'day', requests: 1 }] }],
      }
      const t = setup(config, algorithm)
      const index = `${t.key}:subjects`
      const call = await t.consumeLosingReply({ subject: 'd:x' })
      expect(await redis.zscore(index, 'd:x')).not.toBeNull()
      await call.fail()
      expect(await redis.exists(`${t.key}:subject:d:x`)).toBe(0)
      expect(await redis.zscore(index, 'd:x')).toBeNull()

      const late = lateReplies(config, algorithm)
      await late.consumeRepliedLate({ subject: 'd:y' })
      expect(await redis.exists(`${late.key}:subject:d:y`)).toBe(0)
      expect(await redis.zscore(`${late.key}:subjects`, 'd:y')).toBeNull()
    })

    it('a hash emptied by an adjust and made anew is new state: a void of an earlier admission takes nothing from it', async () => {
      const t = setup({ limits: [{ window: 'minute', requests: 10, tokens: 1000 }] }, algorithm)
      const call = await t.consumeLosingReply({ requests: 0, tokens: 50 })
      await t.manager.adjust(t.id, { tokens: -50 })
      expect(await redis.exists(t.key)).toBe(0)
      expect(await redis.exists(resetMarkerKey(t.key))).toBe(1)
      await t.manager.consume(t.id, { requests: 0, tokens: 50 })
      await call.fail()
      // As the Durable Object counts it: the admission's charge was taken back by the adjust.
      expect(await t.used()).toEqual([{ requests: 0, tokens: 50 }])
    })

    it('a reset of a hash that is gone (expired) still writes a stamp', async () => {
      const t = setup({ limits: [{ window: 'minute', requests: 10 }] }, algorithm)
      const call = await t.consumeLosingReply({})
      // As if the hash had expired (its windows over by Redis time, not by the application's).
      await redis.del(t.key)
      await t.manager.reset(t.id)
      expect(await redis.exists(resetMarkerKey(t.key))).toBe(1)
      await t.manager.consume(t.id)
      await call.fail()
      expect(await t.used()).toEqual([{ requests: 1, tokens: 0 }])
    })

    it('a reset stamp outlives every receipt written before it, however soon the hash would expire', async () => {
      // The longest receipts: a marker living only as long as the hash would (here 50 ms) would
      // be gone long before the receipt, and its void would then refund from the counts after
      // the reset.
      const t = setup({ limits: [{ window: 'minute', requests: 10 }] }, algorithm, RECEIPT_TTL_RANGE_MS.max)
      const call = await t.consumeLosingReply({})
      await redis.pexpire(t.key, 50)
      await t.manager.reset(t.id)
      const receipts = await redis.keys(`${t.key}:op:*`)
      expect(receipts).toHaveLength(1)
      const markerTtl = await redis.pttl(resetMarkerKey(t.key))
      expect(markerTtl).toBeGreaterThanOrEqual(await redis.pttl(receipts[0]!))
      expect(markerTtl).toBeGreaterThan(RECEIPT_TTL_RANGE_MS.max - 5_000)
      await t.manager.consume(t.id)
      await call.fail()
      expect(await t.used()).toEqual([{ requests: 1, tokens: 0 }])
    })
  })
})
