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
      // `Host: /x` on Deno: a URL parser and Hono read the path /t/globex/invoices (host "x").
      [fromPathPrefix('/t/'), 'http:///x/t/globex/invoices'],
      [fromQuery(), 'http:///x/y?tenant=acme'],
    ] as const) {
      expect(() => read(extractor, raw(url)), url).toThrowError(
        expect.objectContaining({
          code: 'tenant_invalid_id',
          message: expect.stringMatching(/reads differently/),
        }),
      )
    }
  })

  // @hono/node-server builds request.url from a Host header without parsing it: `new URL()` threw a
  // TypeError, a 500 any client could cause, and stopped the extractors after it.
  it('the URL extractors read a URL whose host a URL parser refuses: no subdomain, the query as text', () => {
    const raw = (url: string) => {
      const request = at('http://x/')
      Object.defineProperty(request, 'url', { value: url })
      return request
    }
    for (const host of ['1.2.3.4.5', 'acme.example.123', '999.999.999.999', 'xn--acme-abc.example.com']) {
      expect(read(fromSubdomain('example.com'), raw(`http://${host}/v1?x=1`)), host).toBeUndefined()
      expect(read(fromQuery(), raw(`http://${host}/v1?a=1&tenant=acme#x`)), host).toBe('acme')
      expect(read(fromQuery(), raw(`http://${host}/v1`)), host).toBeUndefined()
      expect(() => read(fromQuery(), raw(`http://${host}/v1?tenant=acme&tenant=globex`))).toThrowError(
        expect.objectContaining({ code: 'tenant_invalid_id' }),
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

    it('reads nested base domains longest first, whatever their order, and never a base as a tenant', () => {
      for (const bases of [
        ['example.com', 'eu.example.com'],
        ['eu.example.com', 'example.com'],
      ]) {
        const nested = fromSubdomain(bases)
        // With example.com tried first, eu.example.com read as tenant "eu", and every tenant under
        // it as a deeper name of example.com (none).
        expect(read(nested, at('https://eu.example.com/')), `${bases}`).toBeUndefined()
        expect(read(nested, at('https://EU.example.com./')), `${bases}`).toBeUndefined()
        expect(read(nested, at('https://acme.eu.example.com/')), `${bases}`).toBe('acme')
        expect(read(nested, at('https://acme.example.com/')), `${bases}`).toBe('acme')
        expect(read(nested, at('https://example.com/')), `${bases}`).toBeUndefined()
        expect(read(nested, at('https://a.b.eu.example.com/')), `${bases}`).toBeUndefined()
        expect(read(nested, at('https://www.eu.example.com/')), `${bases}`).toBeUndefined()
      }
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

  it('fromPathPrefix refuses percent-encoding a router could read as another prefix or tenant', () => {
    const refused = expect.objectContaining({
      code: 'tenant_invalid_id',
      message: expect.stringMatching(/percent-encoding/),
    })
    for (const path of [
      '/%74/globex/invoices', // Hono routes this as /t/globex/invoices
      '/t/%61cme/invoices', // acme to the router
      '/t/gl%6Fbex',
      '/t/acme%2Fglobex/x', // acme/globex to a router that decodes %2F
      '/t%2Fglobex/x', // /t/globex to a router that decodes %2F
      '/%2574/globex/x', // /t/globex after a proxy decoded once and the router again
      '/t/%2561cme/x',
    ]) {
      expect(() => read(fromPathPrefix(), at(`http://x${path}`)), path).toThrowError(refused)
    }
    // Encoding outside the prefix and the tenant segment is the app's business.
    expect(read(fromPathPrefix(), at('http://x/t/acme/a%20b%2Fc'))).toBe('acme')
    expect(read(fromPathPrefix(), at('http://x/files/a%20b'))).toBeUndefined()
    expect(read(fromPathPrefix('/tenants/'), at('http://x/t/%61cme/x'))).toBeUndefined()
    expect(read(fromPathPrefix(), at('http://x/%54/globex'))).toBeUndefined() // /T/ in every reading
    // A malformed escape decodes to itself in every reading: the id validation refuses it.
    expect(read(fromPathPrefix(), at('http://x/t/acme%zz/x'))).toBe('acme%zz')
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
