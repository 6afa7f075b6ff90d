import { ManualClock, type QuotaConfig, type QuotaManager, type QuotaWindow } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import type { QuotaManagerFactory } from './quota-manager'
import { expectExactRetry, randomTenantId, rejectionOf, TestConfigProvider } from './quota-manager'

/** Options of {@link testQuotaSubjects}. */
export interface QuotaSubjectsSuiteOptions {
  /**
   * Per-test timeout in ms (networked stores: Redis, Durable Objects).
   * @default 5000
   */
  timeout?: number
}

/** 2030-03-14T09:26:00.000Z: on a minute boundary, far from any hour, day or month boundary. */
const T0 = Date.UTC(2030, 2, 14, 9, 26)

/**
 * The subject cases of the quota conformance suite (`testQuotaManager` runs them): per-subject
 * limits checked with the tenant's, all-or-nothing both ways, exact match over the longest prefix,
 * subjects sharing the tenant's pool, per-subject `peek`, `adjust` and `reset`, a tenant reset
 * clearing its subjects, bad subject ids and concurrent consumes. Each test uses new tenant ids.
 *
 * @example
 * ```ts
 * import { testQuotaSubjects } from '@tenant/core/testing'
 * testQuotaSubjects('MyQuotaManager', ({ provider, clock }) => new MyQuotaManager(provider, { clock }))
 * ```
 */
export function testQuotaSubjects(
  name: string,
  factory: QuotaManagerFactory,
  options: QuotaSubjectsSuiteOptions = {},
): void {
  const timeout = options.timeout ?? 5_000

  async function setup(quota: QuotaConfig) {
    const clock = new ManualClock(T0)
    const provider = new TestConfigProvider()
    const id = randomTenantId('s')
    provider.setQuota(id, quota)
    const manager = await factory({ provider, clock })
    const used = async (subject?: string, window: QuotaWindow = 'minute') =>
      (await manager.peek(id, subject === undefined ? undefined : { subject })).windows.find(
        (w) => w.window === window,
      )?.used
    return { clock, provider, id, manager, used }
  }

  const keyed: QuotaConfig = {
    limits: [{ window: 'minute', requests: 10, tokens: 1000 }],
    subjects: [{ match: 'key:a', limits: [{ window: 'minute', requests: 3, tokens: 500 }] }],
  }

  async function admitted(manager: QuotaManager, id: string, n: number, subject: string): Promise<number> {
    let count = 0
    for (let i = 0; i < n; i++) if ((await manager.consume(id, { subject })).allowed) count++
    return count
  }

  describe(`${name} (QuotaManager conformance, subjects)`, () => {
    it(
      "checks and charges the subject's windows together with the tenant's",
      async () => {
        const { manager, id, used } = await setup(keyed)
        const decision = await manager.consume(id, { tokens: 100, subject: 'key:a' })
        expect(decision).toMatchObject({
          allowed: true,
          // The most constraining over tenant and subject, per dimension.
          remaining: { requests: 2, tokens: 400 },
          limit: { requests: 3, tokens: 500 },
        })
        expect(decision.windows.map((w) => [w.window, w.subject])).toEqual([
          ['minute', undefined],
          ['minute', 'key:a'],
        ])
        expect(decision.windows[1]!.used).toEqual({ requests: 1, tokens: 100 })
        expect(await used()).toEqual({ requests: 1, tokens: 100 })
        expect(await used('key:a')).toEqual({ requests: 1, tokens: 100 })
      },
      timeout,
    )

    it(
      'a subject denial names the subject and charges nothing, the tenant included',
      async () => {
        const { manager, id, used, clock } = await setup(keyed)
        expect(await admitted(manager, id, 3, 'key:a')).toBe(3)
        const denial = await manager.consume(id, { subject: 'key:a' })
        expect(denial.allowed).toBe(false)
        expect(denial.reason).toMatch(/subject "key:a"/)
        expect(denial.reason).toMatch(/minute requests/)
        expect(denial.remaining.requests).toBe(0)
        expect(denial.retryAfterMs).toBeGreaterThan(0)
        expect(await used()).toEqual({ requests: 3, tokens: 0 })
        expect(await used('key:a')).toEqual({ requests: 3, tokens: 0 })
        // The tenant's pool is still open to other subjects and to requests naming none.
        expect((await manager.consume(id, { subject: 'key:b' })).allowed).toBe(true)
        expect((await manager.consume(id)).allowed).toBe(true)
        expect(await used()).toEqual({ requests: 5, tokens: 0 })
        await expectExactRetry(clock, denial, () => manager.consume(id, { subject: 'key:a' }))
      },
      timeout,
    )

    it(
      'a tenant denial charges the subject nothing and does not blame it',
      async () => {
        const { manager, id, used } = await setup(keyed)
        expect((await manager.consume(id, { tokens: 900 })).allowed).toBe(true)
        const denial = await manager.consume(id, { tokens: 200, subject: 'key:a' })
        expect(denial.allowed).toBe(false)
        expect(denial.reason).toMatch(/minute tokens/)
        expect(denial.reason).not.toMatch(/subject/)
        // Unchanged windows on both sides.
        expect(denial.windows.map((w) => w.used)).toEqual([
          { requests: 1, tokens: 900 },
          { requests: 0, tokens: 0 },
        ])
        expect(await used('key:a')).toEqual({ requests: 0, tokens: 0 })
        expect(await used()).toEqual({ requests: 1, tokens: 900 })
      },
      timeout,
    )

    it(
      'an exact match wins over the longest prefix, which wins over a shorter one',
      async () => {
        const { manager, id, used } = await setup({
          limits: [{ window: 'minute', requests: 100 }],
          subjects: [
            { match: 'model:*', limits: [{ window: 'minute', requests: 5 }] },
            { match: 'model:gpt-*', limits: [{ window: 'minute', requests: 2 }] },
            { match: 'model:gpt-4o', limits: [{ window: 'minute', requests: 1 }] },
          ],
        })
        expect(await admitted(manager, id, 4, 'model:gpt-4o')).toBe(1)
        expect(await admitted(manager, id, 4, 'model:gpt-3.5')).toBe(2)
        expect(await admitted(manager, id, 8, 'model:claude')).toBe(5)
        // Each subject counts on its own, even under one pattern.
        expect(await admitted(manager, id, 8, 'model:mistral')).toBe(5)
        // No pattern: only the tenant's windows, and no subject state.
        const free = await manager.consume(id, { subject: 'key:x' })
        expect(free.allowed).toBe(true)
        expect(free.windows.every((w) => w.subject === undefined)).toBe(true)
        expect((await manager.peek(id, { subject: 'key:x' })).windows).toEqual([])
        expect(await used()).toEqual({ requests: 14, tokens: 0 })
      },
      timeout,
    )

    it(
      "subjects draw on the tenant's pool: the tenant limit caps them together",
      async () => {
        const { manager, id } = await setup({
          limits: [{ window: 'minute', requests: 5 }],
          subjects: [{ match: 'user:*', limits: [{ window: 'minute', requests: 4 }] }],
        })
        expect(await admitted(manager, id, 4, 'user:1')).toBe(4)
        const denial = await manager.consume(id, { subject: 'user:2' })
        expect(denial.allowed).toBe(true)
        const over = await manager.consume(id, { subject: 'user:2' })
        expect(over.allowed).toBe(false)
        expect(over.reason).not.toMatch(/subject/)
        expect((await manager.peek(id, { subject: 'user:2' })).windows[0]!.used.requests).toBe(1)
      },
      timeout,
    )

    it(
      "a subject's refund given its admission's decidedAt leaves the windows started since alone",
      async () => {
        const { manager, id, clock, used } = await setup(keyed)
        const admitted = await manager.consume(id, { tokens: 300, subject: 'key:a' })
        clock.set(T0 + 2 * 60_000)
        await manager.consume(id, { tokens: 40, subject: 'key:a' })
        const settled = await manager.adjust(id, {
          tokens: -250,
          subject: 'key:a',
          decidedAt: admitted.decidedAt,
        })
        expect(settled.windows.map((w) => [w.subject, w.used.tokens])).toEqual([
          [undefined, 40],
          ['key:a', 40],
        ])
        expect(await used('key:a')).toEqual({ requests: 1, tokens: 40 })
      },
      timeout,
    )

    it(
      'peek, adjust and reset work per subject; a tenant reset clears its subjects',
      async () => {
        const { manager, id, used } = await setup(keyed)
        await manager.consume(id, { tokens: 100, subject: 'key:a' })
        const peeked = await manager.peek(id, { subject: 'key:a' })
        expect(peeked).toMatchObject({ tenantId: id, subject: 'key:a' })
        expect(peeked.windows).toHaveLength(1)
        expect(peeked.windows[0]).toMatchObject({
          window: 'minute',
          subject: 'key:a',
          limit: { requests: 3, tokens: 500 },
          remaining: { requests: 2, tokens: 400 },
        })
        const adjusted = await manager.adjust(id, { tokens: 50, subject: 'key:a' })
        expect(adjusted.windows.map((w) => [w.subject, w.used.tokens])).toEqual([
          [undefined, 150],
          ['key:a', 150],
        ])
        await manager.adjust(id, { tokens: -1000, subject: 'key:a' })
        expect(await used('key:a')).toEqual({ requests: 1, tokens: 0 })

        await manager.reset!(id, { subject: 'key:a' })
        expect(await used('key:a')).toEqual({ requests: 0, tokens: 0 })
        expect(await used()).toEqual({ requests: 1, tokens: 0 })

        await manager.consume(id, { subject: 'key:a' })
        await manager.reset!(id)
        expect(await used('key:a')).toEqual({ requests: 0, tokens: 0 })
        expect(await used()).toEqual({ requests: 0, tokens: 0 })
        expect(await admitted(manager, id, 4, 'key:a')).toBe(3)
      },
      timeout,
    )

    it(
      'keeps the same subject of two tenants apart',
      async () => {
        const { manager, id, provider } = await setup(keyed)
        const other = randomTenantId('s')
        provider.setQuota(other, keyed)
        expect(await admitted(manager, id, 4, 'key:a')).toBe(3)
        expect(await admitted(manager, other, 1, 'key:a')).toBe(1)
        await manager.reset!(other)
        expect((await manager.peek(id, { subject: 'key:a' })).windows[0]!.used.requests).toBe(3)
      },
      timeout,
    )

    it(
      'rejects a bad subject id with InvalidSubjectError (400) and charges nothing',
      async () => {
        const { manager, id, used } = await setup(keyed)
        for (const subject of ['', 'two words', 'x'.repeat(256), 'ünï', 'a\nb', 42]) {
          const calls = [
            () => manager.consume(id, { subject } as never),
            () => manager.adjust(id, { tokens: 1, subject } as never),
            () => manager.peek(id, { subject } as never),
          ]
          for (const call of calls) {
            expect(await rejectionOf(call())).toMatchObject({ code: 'invalid_subject', status: 400 })
          }
        }
        expect(await used()).toEqual({ requests: 0, tokens: 0 })
        // The longest valid id and every allowed character.
        const longest = `a${'b'.repeat(254)}`
        expect((await manager.consume(id, { subject: longest })).allowed).toBe(true)
        expect((await manager.consume(id, { subject: 'A-z_0.9:/@+' })).allowed).toBe(true)
      },
      timeout,
    )

    it(
      'admits exactly the tighter limit out of concurrent consumes over two subjects',
      async () => {
        const { manager, id, used } = await setup({
          limits: [{ window: 'minute', requests: 60 }],
          subjects: [{ match: 'key:*', limits: [{ window: 'minute', requests: 40 }] }],
        })
        const decisions = await Promise.all(
          Array.from({ length: 200 }, (_, i) => manager.consume(id, { subject: i % 2 ? 'key:a' : 'key:b' })),
        )
        expect(decisions.filter((d) => d.allowed)).toHaveLength(60)
        const a = (await used('key:a'))!.requests
        const b = (await used('key:b'))!.requests
        expect(a + b).toBe(60)
        expect(Math.max(a, b)).toBeLessThanOrEqual(40)
        expect(await used()).toEqual({ requests: 60, tokens: 0 })
      },
      timeout * 2,
    )
  })
}
