import { InMemoryConfigManager, InMemoryQuotaManager } from '@tenant/core'
import { describe, expect, it } from 'vitest'
import { expectInvalidOption, req } from '../test/helpers'
import {
  applyMiddleware,
  compose,
  currentTenantId,
  getTenantId,
  type Middleware,
  tenantQuota,
  tenantResolver,
} from './index'

describe('compose', () => {
  it('runs middleware in order around the handler', async () => {
    const trace: string[] = []
    const step =
      (name: string): Middleware =>
      async (_request, next) => {
        trace.push(`${name} in`)
        const response = await next()
        trace.push(`${name} out`)
        return response
      }
    const response = await compose(step('a'), step('b'))(req('/'), async () => {
      trace.push('handler')
      return new Response('done')
    })
    expect(await response.text()).toBe('done')
    expect(trace).toEqual(['a in', 'b in', 'handler', 'b out', 'a out'])
  })

  it('lets a middleware answer without calling next', async () => {
    let reached = false
    const stop: Middleware = async () => new Response('stopped', { status: 418 })
    const response = await compose(stop)(req('/'), async () => {
      reached = true
      return new Response()
    })
    expect(response.status).toBe(418)
    expect(reached).toBe(false)
  })

  it('refuses a second call to next', async () => {
    const twice: Middleware = async (_request, next) => {
      await next()
      return next()
    }
    await expect(compose(twice)(req('/'), async () => new Response())).rejects.toThrow(
      'next() called multiple times',
    )
  })

  it('carries the tenant over to a request handed downstream', async () => {
    const rewrite: Middleware = (request, next) =>
      next(new Request(request.url.replace('/old', '/new'), request))
    let seen: [string, string | undefined] | undefined
    await compose(tenantResolver(), rewrite)(req('/old', { tenant: 'acme' }), async (request) => {
      seen = [new URL(request!.url).pathname, getTenantId(request!)]
      return new Response()
    })
    expect(seen).toEqual(['/new', 'acme'])
  })

  it('rejects something that is not a middleware', () => {
    expectInvalidOption(() => compose('x' as never), 'compose(0)', /is not a middleware/)
  })

  it('applyMiddleware passes extra handler arguments through', async () => {
    const env = { DB: 'd1' }
    const ctx = { waitUntil: () => {} }
    const handler = applyMiddleware(tenantResolver(), (request, e: typeof env, c: typeof ctx) =>
      Response.json({ tenant: getTenantId(request), db: e.DB, ctx: c === ctx }),
    )
    const response = await handler(req('/', { tenant: 'acme' }), env, ctx)
    expect(await response.json()).toEqual({ tenant: 'acme', db: 'd1', ctx: true })
  })
})

describe('compose: a Request object handed downstream for several requests', () => {
  it("carries each request's own tenant, and the quota charges it, not the first request's", async () => {
    const configs = new InMemoryConfigManager()
    for (const id of ['acme', 'globex']) {
      await configs.setTenantConfig({ id, quota: { limits: [{ window: 'minute', requests: 100 }] } })
    }
    const quotas = new InMemoryQuotaManager(configs)
    // A rewrite to a fixed upstream that reuses one Request object.
    const upstream = new Request('https://upstream.example.com/')
    const rewrite: Middleware = (_request, next) => next(upstream)
    const chain = compose(
      tenantResolver({ configManager: configs }),
      rewrite,
      tenantQuota({ manager: quotas }),
    )
    const seen: string[] = []
    for (const tenant of ['acme', 'globex']) {
      await chain(req('/', { tenant }), async (request) => {
        seen.push(`${tenant}: ${getTenantId(request!)} ${currentTenantId()}`)
        return new Response('x')
      })
    }
    expect(seen).toEqual(['acme: acme acme', 'globex: globex globex'])
    const used = async (tenant: string) => (await quotas.peek(tenant)).windows[0]!.used.requests
    expect([await used('acme'), await used('globex')]).toEqual([1, 1])
  })
})
