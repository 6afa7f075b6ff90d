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

  it('fromQuery reads the first value of the parameter', () => {
    expect(read(fromQuery(), at('http://x/?tenant=acme&tenant=globex'))).toBe('acme')
    expect(read(fromQuery('org'), at('http://x/?org=globex'))).toBe('globex')
    expect(read(fromQuery(), at('http://x/?tenant='))).toBeUndefined()
    expect(read(fromQuery(), at('http://x/'))).toBeUndefined()
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
