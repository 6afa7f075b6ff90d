import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { InvalidTenantConfigError, isTenantError } from './errors'
import {
  assertMethods,
  invalidOption,
  parseOrThrow,
  parseTenantConfig,
  parseTenantConfigInput,
} from './validate'

describe('parseOrThrow', () => {
  it('returns the parsed value, or throws InvalidTenantConfigError listing every issue', () => {
    const schema = z.strictObject({ a: z.number(), b: z.string() })
    expect(parseOrThrow(schema, { a: 1, b: 'x' })).toEqual({ a: 1, b: 'x' })
    try {
      parseOrThrow(schema, { a: 'x', b: 1 })
      throw new Error('expected a throw')
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidTenantConfigError)
      expect((error as InvalidTenantConfigError).issues.map((i) => i.path)).toEqual([['a'], ['b']])
    }
  })
})

describe('parseTenantConfigInput / parseTenantConfig', () => {
  it('applies defaults to input and refuses timestamps in it', () => {
    expect(parseTenantConfigInput({ id: 'a' }).status).toBe('active')
    expect(() => parseTenantConfigInput({ id: 'a', createdAt: 1 })).toThrow(InvalidTenantConfigError)
    expect(() => parseTenantConfigInput(null)).toThrow(InvalidTenantConfigError)
  })

  it('requires timestamps in a stored config', () => {
    expect(() => parseTenantConfig({ id: 'a' })).toThrow(InvalidTenantConfigError)
    expect(parseTenantConfig({ id: 'a', createdAt: 1, updatedAt: 2 }).updatedAt).toBe(2)
  })
})

describe('assertMethods', () => {
  it('passes an object with every method and names the missing ones otherwise', () => {
    expect(() => assertMethods({ a() {}, b: () => 1 }, 'thing', ['a', 'b'])).not.toThrow()
    expect(() => assertMethods({ a() {}, b: 1 }, 'thing', ['a', 'b', 'c'])).toThrow(
      'invalid tenant config: thing: must have method(s) b, c',
    )
    expect(() => assertMethods(null, 'thing', ['a'])).toThrow(InvalidTenantConfigError)
    expect(() => assertMethods(undefined, 'thing', ['a'])).toThrow(InvalidTenantConfigError)
  })
})

describe('invalidOption', () => {
  it('is a typed error naming the option, with one invalid_option issue', () => {
    const error = invalidOption('Owner.timeoutMs', 'must be a number > 0')
    expect(error).toBeInstanceOf(InvalidTenantConfigError)
    expect(isTenantError(error)).toBe(true)
    expect(error.code).toBe('tenant_invalid_config')
    expect(error.status).toBe(400)
    expect(error.issues).toEqual([
      { path: ['Owner.timeoutMs'], message: 'must be a number > 0', code: 'invalid_option' },
    ])
    expect(error.message).toBe('invalid tenant config: Owner.timeoutMs: must be a number > 0')
  })
})
