import { ManualClock } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { describeError, jsonLogger, requestIds, tenancyLogHooks } from './logger'

function collect(level?: 'info' | 'warn' | 'error' | 'silent') {
  const lines: string[] = []
  const clock = new ManualClock(Date.UTC(2030, 0, 1))
  return { lines, logger: jsonLogger({ clock, write: (l) => lines.push(l), ...(level ? { level } : {}) }) }
}

describe('jsonLogger', () => {
  it('writes one JSON object per line with the time of its clock', () => {
    const { lines, logger } = collect()
    logger.info({ msg: 'hello', tenant: 'acme' })
    expect(lines).toEqual([
      '{"time":"2030-01-01T00:00:00.000Z","level":"info","msg":"hello","tenant":"acme"}',
    ])
  })

  it('drops lines below its level', () => {
    const { lines, logger } = collect('warn')
    logger.info({ msg: 'quiet' })
    logger.warn({ msg: 'loud' })
    logger.error({ msg: 'louder' })
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['loud', 'louder'])
    const silent = collect('silent')
    silent.logger.error({ msg: 'nothing' })
    expect(silent.lines).toEqual([])
  })

  it('never throws on values JSON cannot hold', () => {
    const { lines, logger } = collect()
    logger.error({ msg: 'odd', error: new RangeError('bad'), big: 10n })
    expect(JSON.parse(lines[0]!)).toMatchObject({ error: 'RangeError: bad', big: '10' })
  })
})

describe('describeError', () => {
  it('follows the cause chain', () => {
    const error = new Error('store failed', { cause: new Error('connection refused') })
    expect(describeError(error)).toBe('Error: store failed <- Error: connection refused')
    expect(describeError('plain')).toBe('plain')
  })
})

describe('tenancyLogHooks', () => {
  it('writes a decision line with tenant, stage, allowed, status, code and the request id', () => {
    const { lines, logger } = collect()
    const hooks = tenancyLogHooks(logger)
    const request = new Request('http://x/api/v1/resources?x=1', { method: 'POST' })
    requestIds.set(request, 'req-1')
    hooks.onQuota!({
      request,
      tenantId: 'acme',
      allowed: false,
      status: 429,
      code: 'tenant_quota_exceeded',
      cost: { requests: 1, tokens: 0 },
      decision: {
        allowed: false,
        remaining: {},
        limit: {},
        resetAt: 0,
        retryAfterMs: 1500,
        reason: 'minute requests quota exhausted',
        windows: [],
      },
    })
    expect(JSON.parse(lines[0]!)).toEqual({
      time: '2030-01-01T00:00:00.000Z',
      level: 'warn',
      msg: 'tenancy decision',
      stage: 'quota',
      tenant: 'acme',
      allowed: false,
      status: 429,
      code: 'tenant_quota_exceeded',
      method: 'POST',
      path: '/api/v1/resources',
      requestId: 'req-1',
      cost: { requests: 1, tokens: 0 },
      reason: 'minute requests quota exhausted',
      retryAfterMs: 1500,
    })
  })

  // @hono/node-server passes on a Host header a URL parser refuses: the line read the path with
  // new URL(), threw, and the decision went unlogged (reported as a store error instead).
  it('writes the line of a request whose Host a URL parser refuses', () => {
    const { lines, logger } = collect()
    const hooks = tenancyLogHooks(logger)
    const request = new Request('http://x/')
    Object.defineProperty(request, 'url', { value: 'http://1.2.3.4.5/api/v1/resources?x=1' })
    hooks.onResolve!({ request, tenantId: 'acme', allowed: true, status: 200, source: 'header:X-Tenant-ID' })
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'tenancy decision', path: '/api/v1/resources' })
  })

  it('logs store failures as errors with the cause, and 5xx decisions at error level', () => {
    const { lines, logger } = collect()
    const hooks = tenancyLogHooks(logger)
    const request = new Request('http://x/')
    hooks.onError!(new Error('down', { cause: new Error('ECONNREFUSED') }), {
      stage: 'quota',
      request,
      tenantId: 'acme',
    })
    hooks.onResolve!({
      request,
      tenantId: 'acme',
      allowed: false,
      status: 503,
      code: 'tenant_backend_unavailable',
    })
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'tenancy store error',
        error: 'Error: down <- Error: ECONNREFUSED',
      }),
      expect.objectContaining({ level: 'error', stage: 'resolve', status: 503, requestId: null }),
    ])
  })
})
