import { describe, expect, it } from 'vitest'
import {
  MIN_REQUESTS_PER_SECOND,
  planConfigInputSchema,
  policyConfigSchema,
  quotaConfigSchema,
  quotaLimitSchema,
  rateLimitConfigSchema,
  tenantConfigInputSchema,
  tenantConfigSchema,
} from './schemas'

const issuesOf = (result: {
  success: boolean
  error?: { issues: { path: PropertyKey[]; message: string }[] }
}) => (result.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`)

describe('quota schemas', () => {
  it('accepts whole limits >= 0, either dimension, or none (unlimited)', () => {
    for (const limit of [
      { window: 'minute', requests: 0 },
      { window: 'hour', tokens: 1_000_000 },
      { window: 'day', requests: 5, tokens: 10 },
      { window: 'month' },
      { window: 'day', requests: Number.MAX_SAFE_INTEGER },
    ]) {
      expect(quotaLimitSchema.safeParse(limit).success, JSON.stringify(limit)).toBe(true)
    }
  })

  it('rejects negative, fractional, non-finite and non-numeric limits', () => {
    for (const requests of [-1, 0.5, 1.0001, Number.NaN, Number.POSITIVE_INFINITY, '5', null, 2 ** 53]) {
      const result = quotaLimitSchema.safeParse({ window: 'day', requests })
      expect(result.success, String(requests)).toBe(false)
      expect(result.error?.issues[0]?.path).toEqual(['requests'])
    }
    expect(issuesOf(quotaLimitSchema.safeParse({ window: 'day', tokens: -3 }))).toEqual([
      'tokens: must be >= 0',
    ])
    expect(issuesOf(quotaLimitSchema.safeParse({ window: 'day', tokens: 2.5 }))).toEqual([
      'tokens: must be a whole number',
    ])
  })

  it('rejects -0, which every database store gives back as 0', () => {
    for (const limit of [
      { window: 'day', requests: -0 },
      { window: 'day', tokens: -0 },
    ]) {
      const result = quotaConfigSchema.safeParse({ limits: [limit] })
      expect(result.success, JSON.stringify(limit)).toBe(false)
    }
    expect(quotaConfigSchema.safeParse({ limits: [{ window: 'day', requests: 0 }] }).success).toBe(true)
  })

  it('rejects unknown windows and unknown keys', () => {
    expect(quotaLimitSchema.safeParse({ window: 'week', requests: 1 }).success).toBe(false)
    const extra = quotaLimitSchema.safeParse({ window: 'day', requests: 1, burst: 2 })
    expect(extra.error?.issues[0]?.code).toBe('unrecognized_keys')
    expect(quotaConfigSchema.safeParse({ limits: [], window: 'day' }).success).toBe(false)
  })

  it('rejects duplicate windows, pointing at the second one', () => {
    const result = quotaConfigSchema.safeParse({
      limits: [
        { window: 'day', requests: 1 },
        { window: 'hour', requests: 1 },
        { window: 'day', tokens: 5 },
      ],
    })
    expect(issuesOf(result)).toEqual(['limits.2.window: duplicate "day" limit: one limit per window'])
  })

  it('allows at most one limit per window and defaults to no limits', () => {
    expect(quotaConfigSchema.parse({})).toEqual({ limits: [] })
    const five = ['minute', 'hour', 'day', 'month', 'minute'].map((window) => ({ window }))
    expect(quotaConfigSchema.safeParse({ limits: five }).success).toBe(false)
  })
})

describe('rateLimitConfigSchema', () => {
  it('accepts a positive rate and a whole burst >= 1', () => {
    expect(rateLimitConfigSchema.parse({ requestsPerSecond: 0.5, burst: 1 })).toEqual({
      requestsPerSecond: 0.5,
      burst: 1,
    })
  })

  it('accepts the documented minimum rate', () => {
    expect(
      rateLimitConfigSchema.safeParse({ requestsPerSecond: MIN_REQUESTS_PER_SECOND, burst: 1 }).success,
    ).toBe(true)
  })

  it('rejects zero, negative, non-finite rates and bad bursts', () => {
    for (const bad of [
      { requestsPerSecond: 0, burst: 1 },
      { requestsPerSecond: -1, burst: 1 },
      { requestsPerSecond: Number.POSITIVE_INFINITY, burst: 1 },
      // Below MIN_REQUESTS_PER_SECOND: a slower refill is a quota, not a rate.
      { requestsPerSecond: 1e-16, burst: 1 },
      { requestsPerSecond: MIN_REQUESTS_PER_SECOND / 2, burst: 1 },
      { requestsPerSecond: 1, burst: 0 },
      { requestsPerSecond: 1, burst: 1.5 },
      { requestsPerSecond: 1, burst: -2 },
      { requestsPerSecond: 1 },
      { requestsPerSecond: 1, burst: 1, refill: 1 },
    ]) {
      expect(rateLimitConfigSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false)
    }
  })
})

describe('policyConfigSchema', () => {
  it('defaults every list to empty (allow all)', () => {
    expect(policyConfigSchema.parse({})).toEqual({
      allowedModels: [],
      allowedTools: [],
      allowedMethods: [],
      allowedPaths: [],
    })
  })

  it('rejects empty entries and unknown keys', () => {
    expect(policyConfigSchema.safeParse({ allowedModels: [''] }).success).toBe(false)
    expect(policyConfigSchema.safeParse({ deniedModels: ['x'] }).success).toBe(false)
  })

  it('accepts paths that are "*", exact, or end in a single "*"', () => {
    const allowedPaths = ['*', '/', '/v1/chat', '/v1/files/*', '/beta*']
    expect(policyConfigSchema.parse({ allowedPaths }).allowedPaths).toEqual(allowedPaths)
  })

  it('rejects paths without a leading "/" or with "*" anywhere but the end', () => {
    expect(issuesOf(policyConfigSchema.safeParse({ allowedPaths: ['v1/chat'] }))).toEqual([
      'allowedPaths.0: must start with "/" or be "*"',
    ])
    for (const path of ['/v1/*/chat', '**', '/a**', '*/a']) {
      expect(policyConfigSchema.safeParse({ allowedPaths: [path] }).success, path).toBe(false)
    }
  })
})

describe('tenantConfigInputSchema', () => {
  it('applies every default', () => {
    expect(tenantConfigInputSchema.parse({ id: 'acme' })).toEqual({
      id: 'acme',
      status: 'active',
      plan: null,
      quota: { limits: [] },
      rateLimit: null,
      concurrency: null,
      policy: { allowedModels: [], allowedTools: [], allowedMethods: [], allowedPaths: [] },
      metadata: {},
    })
  })

  it('rejects unknown keys and caller-supplied timestamps', () => {
    for (const key of ['createdAt', 'updatedAt', 'name', 'quotas']) {
      const result = tenantConfigInputSchema.safeParse({ id: 'acme', [key]: 1 })
      expect(result.error?.issues[0]?.code, key).toBe('unrecognized_keys')
    }
  })

  it('rejects unknown statuses', () => {
    expect(tenantConfigInputSchema.safeParse({ id: 'acme', status: 'deleted' }).success).toBe(false)
  })

  it('accepts plain JSON metadata and rejects anything a database would change', () => {
    const ok = { s: 'x', n: 1.5, b: true, z: null, a: [1, [2]], o: { p: { q: {} } } }
    expect(tenantConfigInputSchema.parse({ id: 'acme', metadata: ok }).metadata).toEqual(ok)
    const bad: [unknown, string][] = [
      [new Date(0), 'Date is not JSON data'],
      [undefined, 'undefined is not JSON data'],
      [Number.NaN, 'NaN is not JSON data'],
      [new Map(), 'Map is not JSON data'],
    ]
    for (const [value, message] of bad) {
      expect(issuesOf(tenantConfigInputSchema.safeParse({ id: 'acme', metadata: { x: [value] } }))).toEqual([
        `metadata.x.0: ${message}`,
      ])
    }
  })

  it('lists every issue at once', () => {
    const result = tenantConfigInputSchema.safeParse({
      id: 'a/b',
      status: 'gone',
      rateLimit: { requestsPerSecond: -1, burst: 0 },
      policy: { allowedPaths: ['nope'] },
    })
    expect(issuesOf(result).map((i) => i.split(':')[0])).toEqual([
      'id',
      'status',
      'rateLimit.requestsPerSecond',
      'rateLimit.burst',
      'policy.allowedPaths.0',
    ])
  })
})

describe('tenantConfigSchema', () => {
  it('requires whole, non-negative timestamps', () => {
    const base = tenantConfigInputSchema.parse({ id: 'acme' })
    expect(tenantConfigSchema.safeParse({ ...base, createdAt: 1, updatedAt: 2 }).success).toBe(true)
    expect(tenantConfigSchema.safeParse(base).success).toBe(false)
    expect(tenantConfigSchema.safeParse({ ...base, createdAt: -1, updatedAt: 2 }).success).toBe(false)
    expect(tenantConfigSchema.safeParse({ ...base, createdAt: 1.5, updatedAt: 2 }).success).toBe(false)
  })
})

describe('text every store keeps', () => {
  it('refuses U+0000 and unpaired surrogates in allow-list entries, with the entry as the path', () => {
    for (const [list, bad] of [
      ['allowedModels', 'gpt\u00004o'],
      ['allowedTools', 'search\ud800'],
      ['allowedMethods', '\udc00GET'],
      ['allowedPaths', '/v1/\u0000*'],
    ] as const) {
      const result = policyConfigSchema.safeParse({ [list]: [list === 'allowedPaths' ? '/ok' : 'ok', bad] })
      expect(result.success, list).toBe(false)
      expect(result.error!.issues.map((i) => i.path)).toEqual([[list, 1]])
      expect(result.error!.issues[0]!.message).toMatch(/U\+0000|surrogate/)
    }
    // A paired surrogate (an emoji) is ordinary text.
    expect(policyConfigSchema.safeParse({ allowedModels: ['model-\u{1f600}'] }).success).toBe(true)
  })
})

describe('metadata __proto__ keys', () => {
  it('refuses a top-level "__proto__" key (zod would drop it) with an issue at its path', () => {
    for (const schema of [tenantConfigInputSchema, planConfigInputSchema]) {
      const input = JSON.parse('{"id":"acme","metadata":{"__proto__":{"isAdmin":true},"x":1}}')
      const result = schema.safeParse(input)
      expect(result.success).toBe(false)
      expect(issuesOf(result)).toEqual([
        'metadata.__proto__: a metadata key may not be "__proto__" (JavaScript reads it as the prototype)',
      ])
    }
  })

  it('keeps a nested "__proto__" key as plain data, never as a prototype', () => {
    const input = JSON.parse('{"id":"acme","metadata":{"x":{"__proto__":{"isAdmin":true}}}}')
    const parsed = tenantConfigInputSchema.parse(input)
    const nested = parsed.metadata.x as Record<string, unknown>
    expect(Object.keys(nested)).toEqual(['__proto__'])
    expect(Object.getPrototypeOf(nested)).toBe(Object.prototype)
    expect((nested as { isAdmin?: unknown }).isAdmin).toBeUndefined()
    expect(({} as { isAdmin?: unknown }).isAdmin).toBeUndefined()
  })
})
