import { describe, expect, it } from 'vitest'
import { InvalidTenantConfigError } from './errors'
import { compareTenantIds, resolveListTenantsOptions } from './list-tenants'

describe('resolveListTenantsOptions', () => {
  it('applies defaults and picks the pagination mode', () => {
    expect(resolveListTenantsOptions()).toEqual({ mode: 'offset', limit: 50, offset: 0 })
    expect(resolveListTenantsOptions({ limit: 1000, offset: 7 })).toEqual({
      mode: 'offset',
      limit: 1000,
      offset: 7,
    })
    expect(resolveListTenantsOptions({ after: 'acme', limit: 1 })).toEqual({
      mode: 'keyset',
      limit: 1,
      after: 'acme',
    })
    expect(resolveListTenantsOptions({ after: undefined, offset: 2 } as never)).toMatchObject({ offset: 2 })
  })

  it('lists every problem of invalid options', () => {
    try {
      resolveListTenantsOptions({ limit: 0, offset: -1.5 })
      throw new Error('expected a throw')
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues.map((i) => i.path.join('.'))).toEqual([
        'limit',
        'offset',
      ])
    }
    expect(() => resolveListTenantsOptions({ offset: 0, after: 'a' } as never)).toThrow(
      /either offset or after/,
    )
    expect(() => resolveListTenantsOptions({ after: 'x'.repeat(256) })).toThrow(InvalidTenantConfigError)
  })
})

describe('compareTenantIds', () => {
  it('orders by code unit (byte order for valid ids), not by locale', () => {
    const ids = ['b', 'a', 'B', 'A', '_', '-', '.', '0', '9', 'Z', 'z', 'a-b', 'a.b', 'a_b', 'ab', 'a']
    expect([...ids].sort(compareTenantIds)).toEqual([
      '-',
      '.',
      '0',
      '9',
      'A',
      'B',
      'Z',
      '_',
      'a',
      'a',
      'a-b',
      'a.b',
      'a_b',
      'ab',
      'b',
      'z',
    ])
    expect(compareTenantIds('a', 'a')).toBe(0)
  })
})

describe('resolveListTenantsOptions text', () => {
  it('refuses an `after` cursor a store cannot compare (U+0000, unpaired surrogate)', () => {
    for (const after of ['\u0000', 'acme\u0000', 'a\ud800', '\udfffz']) {
      let error: unknown
      try {
        resolveListTenantsOptions({ after })
      } catch (e) {
        error = e
      }
      expect(error, JSON.stringify(after)).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues[0]!.path).toEqual(['after'])
    }
  })
})
