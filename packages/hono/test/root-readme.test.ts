// The repository README's quick start is test/root-readme-quick-start.ts, verbatim: this test fails
// if the two drift apart, then sends the README's curl requests to the app and checks the answers
// its comments promise.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const read = (path: string) => readFileSync(resolve(import.meta.dirname, path), 'utf8')

describe('root README quick start', () => {
  it('is test/root-readme-quick-start.ts', () => {
    const readme = read('../../../README.md')
    const quickStart = readme.slice(readme.indexOf('## Quick start'))
    expect(/```ts\n([\s\S]*?)```/.exec(quickStart)?.[1]).toBe(read('./root-readme-quick-start.ts'))
  })

  it('answers the curl requests as the README says', async () => {
    const { default: app } = await import('./root-readme-quick-start')
    const chat = (headers: Record<string, string>) => app.request('/v1/chat', { method: 'POST', headers })

    const ok = await chat({ 'X-Tenant-ID': 'acme', 'X-Model': 'gpt-4o-mini', 'X-Token-Count': '1200' })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ tenant: 'acme' })
    expect(ok.headers.get('X-Quota-Remaining-Requests')).toBe('99')
    expect(ok.headers.get('X-Quota-Remaining-Tokens')).toBe('48800')
    expect(ok.headers.get('RateLimit-Policy')).not.toBeNull()
    expect(ok.headers.get('RateLimit')).not.toBeNull()

    const denied = await chat({ 'X-Tenant-ID': 'acme', 'X-Model': 'gpt-4o' })
    expect(denied.status).toBe(403)
    expect(denied.headers.get('Content-Type')).toBe('application/problem+json')
    expect(await denied.json()).toMatchObject({
      code: 'tenant_policy_denied',
      detail: 'model "gpt-4o" is not allowed',
    })

    const missing = await chat({})
    expect(missing.status).toBe(401)
    expect(await missing.json()).toMatchObject({ code: 'tenant_required' })

    expect((await app.request('/health')).status).toBe(200)
  })
})
