import { describe, expect, it } from 'vitest'
import { InvalidTenantIdError } from './errors'
import { tenantIdSchema } from './schemas'
import { isValidTenantId, MAX_TENANT_ID_LENGTH, validateTenantId } from './tenant-id'

const valid = [
  'a',
  'Z',
  '0',
  'acme',
  'acme-prod',
  'acme_prod',
  'acme.prod',
  'ACME.Prod-01_x',
  '-',
  '_',
  '...',
  '.acme',
  'acme.',
  '-leading-dash',
  'x'.repeat(MAX_TENANT_ID_LENGTH),
  'A1'.repeat(127) + 'z',
]

const invalid: [unknown, string][] = [
  ['', 'empty'],
  ['x'.repeat(MAX_TENANT_ID_LENGTH + 1), '256 characters'],
  ['x'.repeat(10_000), 'far too long'],
  ['café', 'non-ASCII letter é'],
  ['cafe\u0301', 'combining accent'],
  ['acme🚀', 'emoji'],
  ['ａｃｍｅ', 'fullwidth letters'],
  ['acme１', 'fullwidth digit'],
  ['аcme', 'Cyrillic а that looks like Latin a'],
  ['acme prod', 'space'],
  [' acme', 'leading space'],
  ['acme ', 'trailing space'],
  ['acme\t', 'tab'],
  ['acme\n', 'trailing newline'],
  ['ac\nme', 'newline'],
  ['acme\r', 'carriage return'],
  ['acme\u0000', 'NUL'],
  ['acme\u00a0', 'no-break space'],
  ['acme\u200b', 'zero-width space'],
  ['acme/prod', 'slash'],
  ['acme\\prod', 'backslash'],
  ['acme:prod', 'colon'],
  ['acme@prod', 'at sign'],
  ['acme*', 'asterisk'],
  ['acme%20', 'percent'],
  ['acme?x', 'question mark'],
  ['acme#x', 'hash'],
  ["acme'", 'quote'],
  ['acme;drop', 'semicolon'],
  ['acme,prod', 'comma'],
  ['acme+prod', 'plus'],
  // Dot segments: URL parsers drop them from paths, so the admin plane could never name them.
  ['.', 'a dot segment'],
  ['..', 'a dot segment'],
]

const nonStrings: unknown[] = [undefined, null, 42, 0, true, {}, ['acme'], new String('acme'), Symbol('acme')]

describe('tenant ids', () => {
  it.each(valid)('accepts %j', (id) => {
    expect(validateTenantId(id)).toBe(id)
    expect(isValidTenantId(id)).toBe(true)
    expect(tenantIdSchema.safeParse(id).success).toBe(true)
  })

  it.each(invalid)('rejects %j (%s)', (id) => {
    expect(() => validateTenantId(id)).toThrow(InvalidTenantIdError)
    expect(isValidTenantId(id)).toBe(false)
    expect(tenantIdSchema.safeParse(id).success).toBe(false)
  })

  it.each(nonStrings.map((v) => [v]))('rejects the non-string %s', (id) => {
    expect(() => validateTenantId(id)).toThrow(InvalidTenantIdError)
    expect(isValidTenantId(id)).toBe(false)
    expect(tenantIdSchema.safeParse(id).success).toBe(false)
  })

  it('says why an id is invalid, with code and status', () => {
    const reason = (id: unknown) => {
      try {
        validateTenantId(id)
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidTenantIdError)
        expect((error as InvalidTenantIdError).code).toBe('tenant_invalid_id')
        expect((error as InvalidTenantIdError).status).toBe(400)
        return (error as Error).message
      }
      throw new Error('expected a throw')
    }
    expect(reason('')).toBe('invalid tenant id: empty')
    expect(reason(42)).toBe('invalid tenant id: expected a string, got number')
    expect(reason('x'.repeat(256))).toBe('invalid tenant id: 256 characters, at most 255 allowed')
    expect(reason('a/b')).toMatch(/only letters/)
    expect(reason('..')).toMatch(/dot segment/)
  })

  it('counts length in UTF-16 code units, so no multi-unit character sneaks under the limit', () => {
    expect(MAX_TENANT_ID_LENGTH).toBe(255)
    expect(isValidTenantId(`${'x'.repeat(254)}🚀`)).toBe(false)
  })
})
