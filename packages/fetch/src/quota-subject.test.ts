import {
  InMemoryConfigManager,
  InMemoryQuotaManager,
  ManualClock,
  SlidingWindowQuotaManager,
} from '@tenant/core'
import { beforeEach, describe, expect, it } from 'vitest'
import { expectInvalidOption, okHandler, problem, recorder, req } from '../test/helpers'
import { compose, type QuotaOptions, tenancy, tenantQuota, tenantResolver } from './index'

// 30 s into a minute, so the minute window resets in 30 s.
const START = Date.UTC(2026, 0, 15, 10, 20, 30)

const byModel = (request: Request) => {
  const model = request.headers.get('X-Model')
  return model === null ? undefined : `model:${model}`
}

for (const Manager of [InMemoryQuotaManager, SlidingWindowQuotaManager]) {
  describe(`tenantQuota subject option (${Manager.name})`, () => {
    let clock: ManualClock
    let configs: InMemoryConfigManager
    let manager: InMemoryQuotaManager | SlidingWindowQuotaManager
    beforeEach(async () => {
      clock = new ManualClock(START)
      configs = new InMemoryConfigManager({ clock })
      manager = new Manager(configs, { clock })
      await configs.setTenantConfig({
        id: 'acme',
        quota: {
          limits: [{ window: 'minute', requests: 10, tokens: 1000 }],
          subjects: [
            { match: 'model:*', limits: [{ window: 'minute', requests: 5 }] },
            { match: 'model:large', limits: [{ window: 'minute', requests: 2, tokens: 300 }] },
          ],
        },
      })
    })

    const chain = (options: QuotaOptions = {}) =>
      compose(tenantResolver(), tenantQuota({ manager, clock, subject: byModel, ...options }))
    const send = (model: string | undefined, options: QuotaOptions = {}, tokens = 0) =>
      chain(options)(
        req('/v1/chat', {
          tenant: 'acme',
          headers: { 'X-Token-Count': String(tokens), ...(model === undefined ? {} : { 'X-Model': model }) },
        }),
        okHandler().next,
      )

    it('adds "subject-<window>" items and shows the least remaining over tenant and subject', async () => {
      const response = await send('large', {}, 100)
      expect(response.status).toBe(200)
      expect(response.headers.get('RateLimit-Policy')).toBe(
        '"minute";q=10;w=60, "minute-tokens";q=1000;w=60;qu="tokens", "subject-minute";q=2;w=60, "subject-minute-tokens";q=300;w=60;qu="tokens"',
      )
      expect(response.headers.get('RateLimit')).toMatch(
        /^"minute";r=9;t=\d+, "minute-tokens";r=900;t=\d+, "subject-minute";r=1;t=\d+, "subject-minute-tokens";r=200;t=\d+$/,
      )
      expect(response.headers.get('X-Quota-Remaining-Requests')).toBe('1')
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('200')
    })

    it("refuses with 429 when the subject's window is full, charging the tenant nothing", async () => {
      const { hooks, events } = recorder()
      expect((await send('large')).status).toBe(200)
      expect((await send('large')).status).toBe(200)
      const denied = await send('large', { hooks })
      expect(denied.status).toBe(429)
      expect(Number(denied.headers.get('Retry-After'))).toBeGreaterThan(0)
      expect(denied.headers.get('RateLimit')).toContain('"subject-minute";r=0')
      expect(denied.headers.get('X-Quota-Remaining-Requests')).toBe('0')
      expect((await problem(denied)).detail).toMatch(/subject "model:large"/)
      expect(events.at(-1)!.event).toMatchObject({
        status: 429,
        cost: { requests: 1, tokens: 0, subject: 'model:large' },
      })
      expect((await manager.peek('acme')).windows[0]!.used.requests).toBe(2)
      // Other models and requests naming none still draw on the tenant's pool.
      expect((await send('small')).status).toBe(200)
      const plain = await send(undefined)
      expect(plain.status).toBe(200)
      expect(plain.headers.get('RateLimit-Policy')).not.toContain('subject')
      expect((await manager.peek('acme')).windows[0]!.used.requests).toBe(4)
    })

    it('refuses a bad subject with 400 invalid_subject and charges nothing', async () => {
      for (const model of ['two words', 'x'.repeat(300)]) {
        const response = await send(model)
        expect(response.status).toBe(400)
        expect(await problem(response)).toMatchObject({ code: 'invalid_subject' })
      }
      const empty = await chain({ subject: () => '' })(req('/', { tenant: 'acme' }), okHandler().next)
      expect(empty.status).toBe(400)
      expect((await manager.peek('acme')).windows[0]!.used.requests).toBe(0)
    })

    it('takes an async subject and a TenantError thrown by it', async () => {
      const late = await chain({ subject: async () => 'model:large' })(
        req('/', { tenant: 'acme' }),
        okHandler().next,
      )
      expect(late.headers.get('RateLimit-Policy')).toContain('"subject-minute";q=2')
      const { InvalidSubjectError } = await import('@tenant/core')
      const thrown = await chain({
        subject: () => {
          throw new InvalidSubjectError('no key')
        },
      })(req('/', { tenant: 'acme' }), okHandler().next)
      expect(thrown.status).toBe(400)
    })

    it('adjusts the subject with the tenant once the upstream said what it used', async () => {
      const quota = chain({
        actualTokens: (response) => Number(response.headers.get('X-Usage-Tokens')),
      })
      const response = await quota(
        req('/', { tenant: 'acme', headers: { 'X-Model': 'large', 'X-Token-Count': '100' } }),
        async () => new Response('answer', { headers: { 'X-Usage-Tokens': '250' } }),
      )
      expect(response.headers.get('X-Quota-Remaining-Tokens')).toBe('50')
      expect(response.headers.get('RateLimit')).toContain('"subject-minute-tokens";r=50')
      const usage = await manager.peek('acme', { subject: 'model:large' })
      expect(usage.windows[0]!.used).toEqual({ requests: 1, tokens: 250 })
    })

    it('works through tenancy({ quota: { manager, subject } })', async () => {
      const app = tenancy({ configManager: configs, quota: { manager, clock, subject: byModel } })
      for (let i = 0; i < 2; i++) {
        expect(
          (await app(req('/', { tenant: 'acme', headers: { 'X-Model': 'large' } }), okHandler().next)).status,
        ).toBe(200)
      }
      const denied = await app(
        req('/', { tenant: 'acme', headers: { 'X-Model': 'large' } }),
        okHandler().next,
      )
      expect(denied.status).toBe(429)
    })

    it('rejects a subject option that is not a function', () => {
      expectInvalidOption(
        () => tenantQuota({ manager, subject: 'model' as never }),
        'tenantQuota.subject',
        /function/,
      )
    })
  })
}
