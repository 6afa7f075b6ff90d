import { InvalidTenantConfigError } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { LocalDenyCache } from './local-deny'
import { localDenyCache } from './options'

describe('LocalDenyCache and late-reply refunds', () => {
  const entry = {
    until: 2_000,
    since: 0,
    requests: 1,
    tokens: 0,
    fingerprint: 'f',
    decision: 'denied',
    retryAt: 2_000,
  }

  it('drops the tenant when one of its admissions is refunded', () => {
    const cache = new LocalDenyCache<string>({ maxHoldMs: 5_000 })
    cache.remember('acme', entry, cache.refunds)
    cache.remember('beta', entry, cache.refunds)
    expect(cache.match('acme', 1_000, 1, 0, 'f')?.decision).toBe('denied')
    cache.refunded('acme')
    expect(cache.match('acme', 1_000, 1, 0, 'f')).toBeUndefined()
    expect(cache.match('beta', 1_000, 1, 0, 'f')?.decision).toBe('denied')
  })

  it('drops the tenant when this process charges it again, without counting a refund', () => {
    const cache = new LocalDenyCache<string>({ maxHoldMs: 5_000 })
    cache.remember('acme', entry, cache.refunds)
    cache.remember('beta', entry, cache.refunds)
    const refunds = cache.refunds
    cache.charged('acme')
    expect(cache.match('acme', 1_000, 1, 0, 'f')).toBeUndefined()
    expect(cache.match('beta', 1_000, 1, 0, 'f')?.decision).toBe('denied')
    expect(cache.refunds).toBe(refunds)
  })

  it('does not remember a denial whose call was made before a refund was sent', () => {
    // Redis may have decided the denial before the refund ran: the room it made is not in it.
    const cache = new LocalDenyCache<string>()
    const before = cache.refunds
    cache.refunded('acme')
    cache.remember('acme', entry, before)
    expect(cache.size).toBe(0)
    // A call made after the refund was sent is decided after it (one connection, in order).
    cache.remember('acme', entry, cache.refunds)
    expect(cache.size).toBe(1)
  })

  it('holds no entry longer than maxHoldMs after its call (1 s by default)', () => {
    const long = { ...entry, until: 600_000, since: 10_000 }
    const cache = new LocalDenyCache<string>()
    cache.remember('acme', long, cache.refunds)
    expect(cache.match('acme', 10_999, 1, 0, 'f')?.decision).toBe('denied')
    expect(cache.match('acme', 11_000, 1, 0, 'f')).toBeUndefined()
    const none = new LocalDenyCache<string>({ maxHoldMs: 0 })
    none.remember('acme', long, none.refunds)
    expect(none.size).toBe(0)
  })

  it('answers only a request of the denied cost, tokens included', () => {
    // Another cost can be denied for another reason, and retry at another time.
    const cache = new LocalDenyCache<string>({ maxHoldMs: 5_000 })
    cache.remember('acme', { ...entry, requests: 2, tokens: 500 }, cache.refunds)
    expect(cache.match('acme', 1_000, 2, 500, 'f')?.decision).toBe('denied')
    expect(cache.match('acme', 1_000, 2, 0, 'f')).toBeUndefined()
    expect(cache.match('acme', 1_000, 2, 501, 'f')).toBeUndefined()
    expect(cache.match('acme', 1_000, 3, 500, 'f')).toBeUndefined()
    expect(cache.match('acme', 1_000, 1, 500, 'f')).toBeUndefined()
    // A miss keeps the entry for the next request of that cost.
    expect(cache.match('acme', 1_000, 2, 500, 'f')?.decision).toBe('denied')
  })
})

describe('the localDeny option', () => {
  it('is true, false, undefined or an options object; anything else is InvalidTenantConfigError', () => {
    expect(localDenyCache(undefined)).toBeUndefined()
    expect(localDenyCache(false)).toBeUndefined()
    expect(localDenyCache(true)).toBeInstanceOf(LocalDenyCache)
    expect(localDenyCache({ maxEntries: 5 })).toBeInstanceOf(LocalDenyCache)
    // null was a TypeError; 5, 'yes' and [] turned the cache on with its defaults.
    for (const bad of [null, 5, 'yes', [], () => true]) {
      const make = () => localDenyCache(bad as never)
      expect(make, String(bad)).toThrow(InvalidTenantConfigError)
      expect(make, String(bad)).toThrow(/localDeny/)
    }
  })
})
