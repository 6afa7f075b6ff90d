import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  errorStatus,
  InvalidCostError,
  InvalidTenantConfigError,
  InvalidTenantIdError,
  isTenantError,
  PolicyDeniedError,
  QuotaExceededError,
  RateLimitExceededError,
  TenantAlreadyExistsError,
  TenantBackendError,
  TenantError,
  type TenantErrorCode,
  TenantNotFoundError,
  TenantSuspendedError,
} from './errors'

describe('errors', () => {
  const cases: [TenantError, string, TenantErrorCode, number][] = [
    [new TenantNotFoundError('acme'), 'TenantNotFoundError', 'tenant_not_found', 404],
    [new InvalidTenantIdError('empty'), 'InvalidTenantIdError', 'tenant_invalid_id', 400],
    [new QuotaExceededError('over', 1500), 'QuotaExceededError', 'tenant_quota_exceeded', 429],
    [new RateLimitExceededError('slow down', 250), 'RateLimitExceededError', 'tenant_rate_limited', 429],
    [new PolicyDeniedError('no'), 'PolicyDeniedError', 'tenant_policy_denied', 403],
    [new InvalidCostError('negative'), 'InvalidCostError', 'invalid_cost', 400],
    [new TenantSuspendedError('acme'), 'TenantSuspendedError', 'tenant_suspended', 403],
    [new InvalidTenantConfigError([]), 'InvalidTenantConfigError', 'tenant_invalid_config', 400],
    [new TenantBackendError('down'), 'TenantBackendError', 'tenant_backend_unavailable', 503],
    [new TenantAlreadyExistsError('acme'), 'TenantAlreadyExistsError', 'tenant_already_exists', 409],
  ]

  it.each(cases)('%s has its name, code and status', (error, name, code, status) => {
    expect(error.name).toBe(name)
    expect(error.code).toBe(code)
    expect(error.status).toBe(status)
    expect(error).toBeInstanceOf(TenantError)
    expect(error).toBeInstanceOf(Error)
    expect(isTenantError(error)).toBe(true)
    expect(typeof error.stack).toBe('string')
  })

  it('maps the HTTP-facing codes to their statuses', () => {
    expect(errorStatus).toMatchObject({
      tenant_required: 401,
      tenant_invalid_id: 400,
      tenant_unknown: 403,
      tenant_suspended: 403,
      tenant_mismatch: 403,
      tenant_policy_denied: 403,
      tenant_rate_limited: 429,
      tenant_quota_exceeded: 429,
      invalid_cost: 400,
      tenant_backend_unavailable: 503,
    })
    expect(Object.isFrozen(errorStatus)).toBe(true)
    for (const status of Object.values(errorStatus)) {
      expect(status).toBeGreaterThanOrEqual(400)
      expect(status).toBeLessThan(600)
    }
  })

  it('builds the base class for any code, using the status table', () => {
    const error = new TenantError('tenant_mismatch', 'header and token disagree', { tenantId: 'a' })
    expect(error.status).toBe(403)
    expect(error.tenantId).toBe('a')
    expect(error.message).toBe('header and token disagree')
  })

  it('carries the tenant id where one is known', () => {
    expect(new TenantNotFoundError('acme').tenantId).toBe('acme')
    expect(new TenantNotFoundError('acme').message).toBe('tenant "acme" not found')
    expect(new TenantSuspendedError('acme').tenantId).toBe('acme')
    expect(new InvalidCostError('x', { tenantId: 'acme' }).tenantId).toBe('acme')
    expect(new InvalidTenantIdError('empty').tenantId).toBeUndefined()
  })

  it('keeps the retry delay on quota and rate-limit errors', () => {
    expect(new QuotaExceededError('over', 1500).retryAfterMs).toBe(1500)
    expect(new RateLimitExceededError('slow', 250).retryAfterMs).toBe(250)
  })

  it('preserves the cause, and omits it when none was given', () => {
    const cause = new Error('ECONNREFUSED')
    const error = new TenantBackendError('redis unavailable', { cause })
    expect(error.cause).toBe(cause)
    expect(new TenantNotFoundError('a', { cause: 'db row missing' }).cause).toBe('db row missing')
    expect('cause' in new TenantBackendError('no cause')).toBe(false)
  })

  describe('isTenantError', () => {
    it('recognises an error from a second copy of the package by its Symbol.for brand', () => {
      // What another copy of @tenant/core produces: a different class, the same global brand.
      class ForeignTenantError extends Error {
        readonly code = 'tenant_not_found'
        readonly status = 404
        constructor(message: string) {
          super(message)
          ;(this as Record<symbol, unknown>)[Symbol.for('@tenant/core/TenantError')] = true
        }
      }
      const foreign = new ForeignTenantError('from another copy')
      expect(foreign).not.toBeInstanceOf(TenantError)
      expect(isTenantError(foreign)).toBe(true)
      expect(isTenantError({ [Symbol.for('@tenant/core/TenantError')]: true })).toBe(true)
    })

    it('rejects everything else', () => {
      const lookalikes: unknown[] = [
        new Error('plain'),
        { code: 'tenant_not_found', status: 404 },
        { [Symbol('@tenant/core/TenantError')]: true },
        { [Symbol.for('@tenant/core/TenantError')]: 'true' },
        { [Symbol.for('@tenant/core/OtherError')]: true },
        null,
        undefined,
        'tenant_not_found',
        42,
      ]
      for (const value of lookalikes) expect(isTenantError(value)).toBe(false)
    })
  })

  describe('InvalidTenantConfigError', () => {
    it('lists zod issues with paths, messages and codes', () => {
      const result = z
        .strictObject({ a: z.number(), b: z.object({ c: z.string() }) })
        .safeParse({ a: 'x', b: {} })
      if (result.success) throw new Error('expected a failure')
      const error = new InvalidTenantConfigError(result.error.issues)
      expect(error.issues).toEqual([
        { path: ['a'], message: expect.any(String), code: 'invalid_type' },
        { path: ['b', 'c'], message: expect.any(String), code: 'invalid_type' },
      ])
      expect(error.message).toMatch(/^invalid tenant config: a: .+; b\.c: .+$/)
    })

    it('names a root-level issue and turns symbol path segments into strings', () => {
      const error = new InvalidTenantConfigError([
        { path: [], message: 'must be an object', code: 'invalid_type' },
        { path: [Symbol('k') as never, 0], message: 'bad', code: 'custom' },
      ])
      expect(error.message).toBe('invalid tenant config: (root): must be an object; Symbol(k).0: bad')
      expect(error.issues[1]!.path).toEqual(['Symbol(k)', 0])
    })
  })
})
