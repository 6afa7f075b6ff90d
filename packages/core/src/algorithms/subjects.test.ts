import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock'
import { InvalidSubjectError, isTenantError } from '../errors'
import { InMemoryQuotaManager } from '../in-memory-quota-manager'
import { deepFreeze } from '../json'
import { type QuotaConfig, quotaConfigSchema } from '../schemas'
import { SlidingWindowQuotaManager } from '../sliding-window-quota-manager'
import { fixedWindowAlgorithm } from './quota-algorithm'
import {
  consumeWithSubject,
  isValidSubject,
  MAX_SUBJECTS_PER_TENANT,
  subjectQuota,
  validateSubject,
} from './subjects'

const T0 = Date.UTC(2030, 2, 14, 9, 26)

describe('subject ids', () => {
  it('accepts 1 to 255 characters of [A-Za-z0-9._:/@+-]', () => {
    for (const id of ['a', 'model:gpt-4o', 'openai/gpt-4o', 'user@example.com', 'key+1', 'x'.repeat(255)]) {
      expect(isValidSubject(id)).toBe(true)
      expect(validateSubject(id)).toBe(id)
    }
  })

  it('rejects anything else with InvalidSubjectError (invalid_subject, 400)', () => {
    for (const id of ['', ' ', 'a b', 'x'.repeat(256), 'é', 'a*', 'a\u0000', 1, null, undefined]) {
      expect(isValidSubject(id)).toBe(false)
      let error: unknown
      try {
        validateSubject(id)
      } catch (thrown) {
        error = thrown
      }
      expect(error).toBeInstanceOf(InvalidSubjectError)
      expect(isTenantError(error) && [error.code, error.status]).toEqual(['invalid_subject', 400])
    }
  })
})

describe('quotaConfigSchema subjects', () => {
  it('accepts exact ids and prefix patterns, and keeps a config without subjects as it was', () => {
    expect(quotaConfigSchema.parse({ limits: [] })).toEqual({ limits: [] })
    const parsed = quotaConfigSchema.parse({
      limits: [],
      subjects: [
        { match: 'key:1', limits: [{ window: 'minute', requests: 1 }] },
        { match: 'model:*' },
        { match: '*', limits: [] },
      ],
    })
    expect(parsed.subjects).toHaveLength(3)
    expect(parsed.subjects![1]).toEqual({ match: 'model:*', limits: [] })
  })

  it('rejects bad patterns, duplicates, duplicate windows and more than 1,000 patterns', () => {
    const bad = [
      [{ match: '' }],
      [{ match: 'a b' }],
      [{ match: 'a*b' }],
      [{ match: '**' }],
      [{ match: `${'x'.repeat(256)}*` }],
      [{ match: 'k', limits: [{ window: 'minute', requests: -1 }] }],
      [{ match: 'k', limits: [{ window: 'minute' }, { window: 'minute' }] }],
      [{ match: 'k' }, { match: 'k' }],
      [{ match: 'k', extra: 1 }],
      Array.from({ length: 1001 }, (_, i) => ({ match: `k${i}` })),
    ]
    for (const subjects of bad) {
      expect(quotaConfigSchema.safeParse({ limits: [], subjects }).success, JSON.stringify(subjects[0])).toBe(
        false,
      )
    }
    const most = Array.from({ length: 1000 }, (_, i) => ({ match: `k${i}*` }))
    expect(quotaConfigSchema.safeParse({ limits: [], subjects: most }).success).toBe(true)
  })
})

describe('subjectQuota', () => {
  const config: QuotaConfig = deepFreeze({
    limits: [],
    subjects: [
      { match: '*', limits: [{ window: 'day', requests: 1 }] },
      { match: 'model:*', limits: [{ window: 'minute', requests: 2 }] },
      { match: 'model:gpt-*', limits: [{ window: 'minute', requests: 3 }] },
      { match: 'model:gpt-4o', limits: [{ window: 'minute', requests: 4 }] },
      { match: 'key:none', limits: [] },
    ],
  })

  it("refuses a hand-written provider's pattern without a match as a bad config (400), not a TypeError", async () => {
    const broken = { limits: [], subjects: [{ limits: [{ window: 'minute', requests: 1 }] }] }
    const quotas = new InMemoryQuotaManager({ quotaConfig: async () => broken as unknown as QuotaConfig })
    const error = await quotas.consume('acme', { subject: 'key:1' }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isTenantError(error) && error.code).toBe('tenant_invalid_config')
  })

  it('takes the exact match, else the longest prefix', () => {
    const requests = (subject: string) => subjectQuota(config, subject)?.limits[0]?.requests
    expect(requests('model:gpt-4o')).toBe(4)
    expect(requests('model:gpt-4o-mini')).toBe(3)
    expect(requests('model:claude')).toBe(2)
    expect(requests('user:1')).toBe(1)
    // A pattern without limits gives the subject no windows of its own.
    expect(subjectQuota(config, 'key:none')).toBeUndefined()
    expect(subjectQuota({ limits: [] }, 'model:gpt-4o')).toBeUndefined()
  })

  it('agrees with a naive scan for any pattern set (property)', () => {
    const id = fc.stringMatching(/^[ab:]{1,4}$/)
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(id, fc.boolean()), { selector: ([m, p]) => `${m}${p}` }),
        id,
        (raw, subject) => {
          const subjects = raw.map(([m, prefix], i) => ({
            match: prefix ? `${m}*` : m,
            limits: [{ window: 'minute' as const, requests: i + 1 }],
          }))
          const exact = subjects.find((s) => s.match === subject)
          const prefixes = subjects
            .filter((s) => s.match.endsWith('*') && subject.startsWith(s.match.slice(0, -1)))
            .sort((a, b) => b.match.length - a.match.length)
          const expected = (exact ?? prefixes[0])?.limits[0]?.requests
          expect(subjectQuota({ limits: [], subjects }, subject)?.limits[0]?.requests).toBe(expected)
        },
      ),
    )
  })
})

describe('consumeWithSubject', () => {
  const config: QuotaConfig = { limits: [{ window: 'minute', requests: 5, tokens: 100 }] }
  const own: QuotaConfig = { limits: [{ window: 'minute', requests: 3, tokens: 60 }] }

  it('is all-or-nothing for any sequence of costs (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ requests: fc.integer({ min: 0, max: 2 }), tokens: fc.integer({ min: 0, max: 40 }) }),
          {
            maxLength: 30,
          },
        ),
        (costs) => {
          let tenant: ReturnType<typeof fixedWindowAlgorithm.consume>['state'] | undefined
          let subject: typeof tenant
          let charged = { requests: 0, tokens: 0 }
          for (const cost of costs) {
            const step = consumeWithSubject(fixedWindowAlgorithm, tenant, subject, config, own, cost, 'k', T0)
            const fitsTenant = charged.requests + cost.requests <= 5 && charged.tokens + cost.tokens <= 100
            const fitsSubject = charged.requests + cost.requests <= 3 && charged.tokens + cost.tokens <= 60
            expect(step.allowed).toBe(fitsTenant && fitsSubject)
            expect(step.decision.allowed).toBe(step.allowed)
            if (step.allowed) {
              // What it added to each side, for a refund (nothing saturates here: the cost).
              const added = { requests: cost.requests, tokens: cost.tokens }
              expect(step.charged).toEqual({ tenant: { minute: added }, subject: { minute: added } })
              tenant = step.tenant
              subject = step.subject
              charged = { requests: charged.requests + cost.requests, tokens: charged.tokens + cost.tokens }
            } else {
              expect(step.tenant).toBe(tenant)
              expect(step.subject).toBe(subject)
              expect(step.charged).toBeUndefined()
              expect(step.decision.windows.map((w) => w.used)).toEqual([charged, charged])
            }
          }
        },
      ),
    )
  })
})

describe('in-memory subject bound', () => {
  for (const [name, make] of [
    ['InMemoryQuotaManager', (p: never, clock: ManualClock) => new InMemoryQuotaManager(p, { clock })],
    [
      'SlidingWindowQuotaManager',
      (p: never, clock: ManualClock) => new SlidingWindowQuotaManager(p, { clock }),
    ],
  ] as const) {
    it(`${name} keeps at most MAX_SUBJECTS_PER_TENANT subjects per tenant, evicting the one closest to expiry`, async () => {
      const clock = new ManualClock(T0)
      const provider = {
        quotaConfig: async () => ({
          limits: [],
          subjects: [
            { match: 'early', limits: [{ window: 'minute' as const, requests: 1 }] },
            { match: 'k:*', limits: [{ window: 'hour' as const, requests: 1 }] },
          ],
        }),
      }
      const quotas = make(provider as never, clock)
      expect((await quotas.consume('acme', { subject: 'early' })).allowed).toBe(true)
      for (let i = 1; i < MAX_SUBJECTS_PER_TENANT; i++) await quotas.consume('acme', { subject: `k:${i}` })
      expect(quotas.subjectCount('acme')).toBe(MAX_SUBJECTS_PER_TENANT)
      await quotas.consume('acme', { subject: 'k:new' })
      expect(quotas.subjectCount('acme')).toBe(MAX_SUBJECTS_PER_TENANT)
      // The minute subject expires first, so it made room: it is admitted again.
      expect((await quotas.consume('acme', { subject: 'early' })).allowed).toBe(true)
      expect((await quotas.consume('acme', { subject: 'k:1' })).allowed).toBe(false)
      // Another tenant's subjects are not affected, and idle subjects leave with their windows.
      expect(quotas.subjectCount('other')).toBe(0)
      clock.advance(2 * 60 * 60_000)
      await quotas.consume('other')
      await quotas.consume('other')
      expect(quotas.subjectCount('acme')).toBe(0)
      expect(quotas.size).toBe(0)
    }, 30_000)

    // A subject refunded to zero holds nothing, so it holds no place either (as in Redis): it kept
    // one, and the bound then evicted a subject that counts, giving it a fresh window.
    it(`${name} gives up the place of a subject refunded to nothing: no live subject is evicted for it`, async () => {
      const clock = new ManualClock(T0)
      const provider = {
        quotaConfig: async () => ({
          limits: [],
          subjects: [
            { match: 'short:*', limits: [{ window: 'minute' as const, requests: 1000 }] },
            { match: 'long:*', limits: [{ window: 'day' as const, requests: 1000 }] },
          ],
        }),
      }
      const quotas = make(provider as never, clock)
      await quotas.consume('acme', { tokens: 5, subject: 'short:live' })
      await quotas.consume('acme', { requests: 0, tokens: 7, subject: 'long:emptied' })
      await quotas.adjust('acme', { tokens: -7, subject: 'long:emptied' })
      expect(quotas.subjectCount('acme')).toBe(1)
      for (let i = 0; i < MAX_SUBJECTS_PER_TENANT - 1; i++)
        await quotas.consume('acme', { subject: `long:${i}` })
      expect(quotas.subjectCount('acme')).toBe(MAX_SUBJECTS_PER_TENANT)
      expect((await quotas.peek('acme', { subject: 'short:live' })).windows[0]!.used).toEqual({
        requests: 1,
        tokens: 5,
      })
    }, 30_000)

    it(`${name} forgets a tenant's idle subjects with their windows while another of its subjects lives on`, async () => {
      // One subject counts for the month; 5,000 count for a minute. Once their minute is over,
      // the tenant's plain requests (no subject) sweep them, a batch a second, not at the month's end.
      const clock = new ManualClock(T0)
      const provider = {
        quotaConfig: async () => ({
          limits: [{ window: 'minute' as const, requests: 1_000_000 }],
          subjects: [
            { match: 'key:*', limits: [{ window: 'minute' as const, requests: 10 }] },
            { match: 'plan:main', limits: [{ window: 'month' as const, tokens: 1_000_000 }] },
          ],
        }),
      }
      const quotas = make(provider as never, clock)
      await quotas.consume('acme', { subject: 'plan:main' })
      for (let i = 0; i < 5_000; i++) await quotas.consume('acme', { subject: `key:${i}` })
      expect(quotas.subjectCount('acme')).toBe(5_001)
      clock.advance(3 * 60_000)
      for (let i = 0; i < 10; i++) {
        await quotas.consume('acme')
        clock.advance(1_000)
      }
      expect(quotas.subjectCount('acme')).toBe(1)
      expect((await quotas.peek('acme', { subject: 'plan:main' })).windows[0]!.used.requests).toBe(1)
    }, 30_000)
  }

  // A subject charged again counts longer than it was filed for: at the bound, the subject whose
  // counts end first goes, not the one filed first. (On fixed windows every subject of a window
  // ends with it.)
  // The other way: a refund moves a subject's end earlier than it is filed under. At the bound it
  // is then the one that ends first, so the one evicted (as the Durable Object store does).
  it('SlidingWindowQuotaManager evicts a subject whose end a refund moved earlier than the others', async () => {
    const clock = new ManualClock(T0)
    const provider = {
      quotaConfig: async () => ({
        limits: [],
        subjects: [{ match: 'k:*', limits: [{ window: 'minute' as const, requests: 1000, tokens: 1000 }] }],
      }),
    }
    const quotas = new SlidingWindowQuotaManager(provider as never, { clock })
    // k:s counts in the first sub-window, the others in the second; then k:s gets tokens in the
    // third, which make it end last.
    await quotas.consume('acme', { subject: 'k:s' })
    clock.advance(6_000)
    for (let i = 1; i < MAX_SUBJECTS_PER_TENANT; i++) await quotas.consume('acme', { subject: `k:z${i}` })
    clock.advance(6_000)
    await quotas.consume('acme', { requests: 0, tokens: 5, subject: 'k:s' })
    await quotas.consume('acme', { subject: 'k:w1' })
    expect((await quotas.peek('acme', { subject: 'k:s' })).windows[0]!.used.requests).toBe(1)
    // The tokens refunded: k:s ends with its first sub-window again, before every other subject.
    await quotas.adjust('acme', { tokens: -5, subject: 'k:s' })
    await quotas.consume('acme', { subject: 'k:w2' })
    expect(quotas.subjectCount('acme')).toBe(MAX_SUBJECTS_PER_TENANT)
    expect((await quotas.peek('acme', { subject: 'k:s' })).windows[0]!.used.requests).toBe(0)
    expect((await quotas.peek('acme', { subject: 'k:w1' })).windows[0]!.used.requests).toBe(1)
  }, 30_000)

  it('SlidingWindowQuotaManager evicts the subject whose counts end first, not one charged again since it was filed', async () => {
    const clock = new ManualClock(T0)
    const provider = {
      quotaConfig: async () => ({
        limits: [],
        subjects: [{ match: 's:*', limits: [{ window: 'minute' as const, requests: 1000 }] }],
      }),
    }
    const quotas = new SlidingWindowQuotaManager(provider as never, { clock })
    await quotas.consume('acme', { subject: 's:a' })
    clock.advance(12_000)
    for (let i = 1; i < MAX_SUBJECTS_PER_TENANT; i++) await quotas.consume('acme', { subject: `s:b${i}` })
    clock.advance(18_000)
    // s:a again: on the sliding window its counts now last longest of all.
    await quotas.consume('acme', { subject: 's:a' })
    await quotas.consume('acme', { subject: 's:new' })
    expect(quotas.subjectCount('acme')).toBe(MAX_SUBJECTS_PER_TENANT)
    expect((await quotas.peek('acme', { subject: 's:a' })).windows[0]!.used.requests).toBe(2)
  }, 30_000)
})
