import { describe, expect, it } from 'vitest'
import { expectInvalidOption } from '../test/helpers'
import {
  chain,
  fromCookie,
  fromHeader,
  fromPathPrefix,
  fromQuery,
  fromSubdomain,
  type TenantExtractor,
} from './index'

const at = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers })
const read = (extractor: TenantExtractor, request: Request) => extractor.extract(request)

describe('extractors', () => {
  it('fromHeader reads the named header, case-insensitively', () => {
    expect(read(fromHeader(), at('http://x/', { 'x-tenant-id': 'acme' }))).toBe('acme')
    expect(read(fromHeader('X-Org'), at('http://x/', { 'X-Org': 'globex' }))).toBe('globex')
    expect(read(fromHeader(), at('http://x/'))).toBeUndefined()
    expect(fromHeader().source).toBe('header:X-Tenant-ID')
    expectInvalidOption(() => fromHeader('bad header'), 'fromHeader.name', /HTTP header name/)
  })

  it('fromQuery reads the parameter, which may repeat only with the same value', () => {
    expect(read(fromQuery(), at('http://x/?tenant=acme&tenant=acme'))).toBe('acme')
    // One framework reads the first of two values, another the last: neither is the tenant.
    expect(() => read(fromQuery(), at('http://x/?tenant=acme&tenant=globex'))).toThrowError(
      expect.objectContaining({
        code: 'tenant_invalid_id',
        message: expect.stringMatching(/more than once/),
      }),
    )
    expect(read(fromQuery('org'), at('http://x/?org=globex'))).toBe('globex')
    expect(read(fromQuery(), at('http://x/?tenant='))).toBeUndefined()
    expect(read(fromQuery(), at('http://x/'))).toBeUndefined()
  })

  it('fromCookie trims only the spaces and tabs cookie syntax allows, and refuses a cookie repeated with another value', () => {
    // String.prototype.trim() also strips U+00A0, which a framework's cookie parser keeps in the name.
    expect(read(fromCookie(), at('http://x/', { Cookie: '\u00a0tenant=acme' }))).toBeUndefined()
    expect(read(fromCookie(), at('http://x/', { Cookie: '\u00a0tenant=acme; tenant=globex' }))).toBe('globex')
    expect(read(fromCookie(), at('http://x/', { Cookie: ' \ttenant=acme\t ' }))).toBe('acme')
    expect(read(fromCookie(), at('http://x/', { Cookie: 'tenant=acme; tenant="acme"' }))).toBe('acme')
    expect(() => read(fromCookie(), at('http://x/', { Cookie: 'tenant=acme; tenant=globex' }))).toThrowError(
      expect.objectContaining({
        code: 'tenant_invalid_id',
        message: expect.stringMatching(/more than once/),
      }),
    )
  })

  it('the URL extractors refuse a URL a URL parser and a router read differently (raw on Deno)', () => {
    const raw = (url: string) => {
      const request = at('http://x/')
      Object.defineProperty(request, 'url', { value: url })
      return request
    }
    for (const [extractor, url] of [
      [fromPathPrefix('/t/'), 'http://api.example.com/t/acme/../globex/x'],
      [fromPathPrefix('/t/'), 'http://api.example.com\\t\\acme/t/globex/x'],
      [fromQuery(), 'http://api.example.com/a/../b?tenant=acme'],
      [fromSubdomain('example.com'), 'http://acme.example.com\\x/y'],
    ] as const) {
      expect(() => read(extractor, raw(url)), url).toThrowError(
        expect.objectContaining({
          code: 'tenant_invalid_id',
          message: expect.stringMatching(/reads differently/),
        }),
      )
    }
  })

  it('fromCookie finds its cookie among others, unquoted and decoded', () => {
    expect(read(fromCookie(), at('http://x/', { Cookie: 'a=1; tenant=acme; b=2' }))).toBe('acme')
    expect(read(fromCookie(), at('http://x/', { Cookie: 'tenant="acme"' }))).toBe('acme')
    expect(read(fromCookie('org'), at('http://x/', { Cookie: 'org=glo%62ex' }))).toBe('globex')
    expect(read(fromCookie(), at('http://x/', { Cookie: 'xtenant=acme' }))).toBeUndefined()
    expect(read(fromCookie(), at('http://x/', { Cookie: 'tenant=%E0%A4%A' }))).toBe('%E0%A4%A')
    expect(read(fromCookie(), at('http://x/'))).toBeUndefined()
    expectInvalidOption(() => fromCookie('a;b'), 'fromCookie.name', /cookie name/)
  })

  describe('fromSubdomain', () => {
    const sub = fromSubdomain(['example.com', 'localhost'])
    it.each([
      ['https://acme.example.com/x', 'acme'],
      ['https://ACME.Example.com/x', 'acme'],
      ['http://acme.localhost:8787/', 'acme'],
      ['https://acme.example.com./', 'acme'],
      ['https://example.com/', undefined],
      ['https://www.example.com/', undefined],
      ['https://a.b.example.com/', undefined],
      ['https://acme.example.org/', undefined],
      ['https://evilexample.com/', undefined],
      ['http://127.0.0.1:8080/', undefined],
      ['http://[::1]:8080/', undefined],
      ['http://localhost/', undefined],
    ])('%s -> %s', (url, expected) => {
      expect(read(sub, at(url))).toBe(expected)
    })

    it('honours ignore and rejects a missing base domain', () => {
      expect(
        read(fromSubdomain('example.com', { ignore: ['api'] }), at('https://api.example.com/')),
      ).toBeUndefined()
      expect(read(fromSubdomain('example.com', { ignore: ['api'] }), at('https://www.example.com/'))).toBe(
        'www',
      )
      expectInvalidOption(() => fromSubdomain(''), 'fromSubdomain.baseDomain', /domain name/)
      expectInvalidOption(() => fromSubdomain([]), 'fromSubdomain.baseDomain', /at least one/)
    })
  })

  it('fromPathPrefix reads the segment after the prefix', () => {
    expect(read(fromPathPrefix(), at('http://x/t/acme/invoices'))).toBe('acme')
    expect(read(fromPathPrefix(), at('http://x/t/acme'))).toBe('acme')
    expect(read(fromPathPrefix('tenants'), at('http://x/tenants/globex/usage'))).toBe('globex')
    expect(read(fromPathPrefix('/'), at('http://x/acme/usage'))).toBe('acme')
    expect(read(fromPathPrefix(), at('http://x/t/'))).toBeUndefined()
    expect(read(fromPathPrefix(), at('http://x/tx/acme'))).toBeUndefined()
    expect(read(fromPathPrefix(), at('http://x/health'))).toBeUndefined()
  })

  it('chain returns the first id found', async () => {
    const both = chain(fromHeader(), fromQuery())
    expect(await read(both, at('http://x/?tenant=q', { 'X-Tenant-ID': 'h' }))).toBe('h')
    expect(await read(both, at('http://x/?tenant=q'))).toBe('q')
    expect(await read(both, at('http://x/'))).toBeUndefined()
    expect(both.source).toBe('chain(header:X-Tenant-ID,query:tenant)')
    expectInvalidOption(() => chain({} as never), 'chain(0)', /is not an extractor/)
  })
})
