import { describe, expect, it } from 'vitest'
import { ManualClock } from './clock'
import type { QuotaProvider } from './config'
import { InvalidTenantConfigError } from './errors'
import { SlidingWindowQuotaManager } from './sliding-window-quota-manager'

const provider: QuotaProvider = { quotaConfig: async () => ({ limits: [{ window: 'hour', requests: 60 }] }) }
const H = Date.UTC(2030, 2, 14, 9)

describe('SlidingWindowQuotaManager', () => {
  it('defaults to 10 buckets per window and validates precision once, in the constructor', () => {
    expect(new SlidingWindowQuotaManager(provider).precision).toBe(10)
    expect(new SlidingWindowQuotaManager(provider, { precision: 60 }).precision).toBe(60)
    for (const precision of [0, 7, 2.5, 5000, Number.NaN]) {
      expect(() => new SlidingWindowQuotaManager(provider, { precision })).toThrow(InvalidTenantConfigError)
    }
  })

  it('a finer precision gives capacity back in smaller steps', async () => {
    const steps = async (precision: number) => {
      const clock = new ManualClock(H)
      const manager = new SlidingWindowQuotaManager(provider, { clock, precision })
      await manager.consume('a', { requests: 60 })
      clock.set(H + 60 * 60_000 + 3 * 60_000)
      return (await manager.peek('a')).windows[0]!.remaining.requests
    }
    // Three minutes into the next hour: with 6-minute buckets half of the first bucket has left
    // (30 of 60 back); with 1-minute buckets (precision 60) the whole of it has.
    expect(await steps(10)).toBe(30)
    expect(await steps(60)).toBe(60)
    expect(await steps(1)).toBe(3)
  })

  it('treats a month as a rolling 30 days', async () => {
    const clock = new ManualClock(H)
    const monthly: QuotaProvider = {
      quotaConfig: async () => ({ limits: [{ window: 'month', tokens: 1000 }] }),
    }
    const manager = new SlidingWindowQuotaManager(monthly, { clock, precision: 1 })
    await manager.consume('a', { tokens: 1000 })
    const denial = await manager.consume('a', { tokens: 1 })
    // One bucket of 30 days: it counts in full until the window starts to leave it, at the end of
    // the bucket, then decays; 1 token fits once 1/1000 of it has left (30 days / 1000 = 2,592 s).
    const bucketStart = Math.floor(H / (30 * 86_400_000)) * 30 * 86_400_000
    expect(H + denial.retryAfterMs).toBe(bucketStart + 30 * 86_400_000 + 2_592_000)
  })
})
