// State lives in the object's storage: it survives a restart of the runtime, and an idle
// tenant's object deletes it once its windows are over.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { calendarWindow, ManualClock } from '@tenant/core'
import { randomTenantId, TestConfigProvider } from '@tenant/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useWorkerd, Workerd } from './workerd'

const T0 = Date.UTC(2030, 2, 14, 9, 26)

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tenant-cloudflare-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Consumes until the first denial; returns how many were admitted. */
async function admitted(consume: () => Promise<{ allowed: boolean }>): Promise<number> {
  for (let n = 0; n < 1000; n++) if (!(await consume()).allowed) return n
  throw new Error('never denied')
}

describe('persistence', () => {
  it('quota windows and token buckets survive a restart of the runtime', async () => {
    const provider = new TestConfigProvider()
    const clock = new ManualClock(T0)
    const id = randomTenantId('restart')
    provider.setQuota(id, { limits: [{ window: 'hour', requests: 10, tokens: 1000 }] })
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 5 })

    const first = await Workerd.start({ persist: dir })
    try {
      const fixed = first.quotaManager(provider, { clock })
      const sliding = first.quotaManager(provider, { clock, algorithm: 'sliding' })
      const limiter = first.rateLimiter(provider, { clock })
      for (let i = 0; i < 7; i++) expect((await fixed.consume(id, { tokens: 10 })).allowed).toBe(true)
      for (let i = 0; i < 4; i++) expect((await sliding.consume(id, { tokens: 100 })).allowed).toBe(true)
      for (let i = 0; i < 3; i++) expect((await limiter.consume(id)).allowed).toBe(true)
    } finally {
      await first.dispose()
    }

    const second = await Workerd.start({ persist: dir })
    try {
      const fixed = second.quotaManager(provider, { clock })
      const sliding = second.quotaManager(provider, { clock, algorithm: 'sliding' })
      const limiter = second.rateLimiter(provider, { clock })
      expect((await fixed.peek(id)).windows[0]!.used).toEqual({ requests: 7, tokens: 70 })
      expect((await sliding.peek(id)).windows[0]!.used).toEqual({ requests: 4, tokens: 400 })
      // The cleanup alarm was persisted with the state.
      expect((await second.inspect(id)).alarm).toBeGreaterThan(T0)
      expect(await admitted(() => fixed.consume(id))).toBe(3)
      expect(await admitted(() => sliding.consume(id, { tokens: 100 }))).toBe(6)
      expect(await admitted(() => limiter.consume(id))).toBe(2)
    } finally {
      await second.dispose()
    }
  }, 60_000)
})

describe('cleanup of idle tenants', () => {
  const workerd = useWorkerd()

  it("the alarm deletes the object's storage once its windows are over", async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('idle')
    provider.setQuota(id, { limits: [{ window: 'minute', requests: 10 }] })
    // Usage from two hours ago (in the object's time): its minute ended long since, so the alarm
    // the write schedules is due at once and workerd runs it.
    const past = new ManualClock(Date.now() - 2 * 3_600_000)
    const quotas = workerd().quotaManager(provider, { clock: past })
    expect((await quotas.consume(id)).allowed).toBe(true)
    let state = await workerd().inspect(id)
    for (let i = 0; i < 200 && (state.keys.length > 0 || state.alarm !== null); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      state = await workerd().inspect(id)
    }
    expect(state).toMatchObject({ keys: [], alarm: null, alarmWrites: 1 })
    expect(state.deletes).toBeGreaterThan(0)
  }, 30_000)

  it('the alarm keeps what still counts and moves itself to the latest expiry', async () => {
    const provider = new TestConfigProvider()
    const id = randomTenantId('busy')
    provider.setQuota(id, { limits: [{ window: 'day', requests: 10 }] })
    provider.setRateLimit(id, { requestsPerSecond: 1, burst: 5 })
    const clock = new ManualClock(T0)
    await workerd().rateLimiter(provider, { clock }).consume(id, { cost: 2 })
    // The first write scheduled the alarm at the bucket's refill time.
    expect((await workerd().inspect(id)).alarm).toBe(T0 + 2000)
    const quotas = workerd().quotaManager(provider, { clock })
    await quotas.consume(id)
    // Later writes leave the alarm alone (no write per decision)...
    expect(await workerd().inspect(id)).toMatchObject({ alarm: T0 + 2000, alarmWrites: 1 })
    // ...and a stale state from an old clock sits next to them until the alarm runs.
    await workerd()
      .quotaManager(provider, { clock: new ManualClock(Date.now() - 3 * 86_400_000), algorithm: 'sliding' })
      .consume(id)
    await workerd().send({ kind: 'alarm', tenantId: id })
    const state = await workerd().inspect(id)
    expect(state.keys.sort()).toEqual(['v1:quota:fixed', 'v1:rate'])
    expect(state.alarm).toBe(calendarWindow('day', T0).end)
    expect((await quotas.peek(id)).windows[0]!.used.requests).toBe(1)
  }, 30_000)
})
