import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { pathOf } from './path'

describe('pathOf', () => {
  it('is the pathname URL gives for the serialized URLs requests carry', () => {
    const urls = [
      'https://api.example.com/v1/chat',
      'http://localhost:8787/',
      'http://127.0.0.1:3000/api/hello?x=1&y=/z',
      'https://api.example.com/a/b#frag/ment',
      'https://api.example.com/a?q#f',
      'https://user:p%2Fw@api.example.com/in/side',
      'http://[::1]:8080/ipv6/path?a',
      'https://api.example.com/%7Efoo/%2F/bar',
      'https://api.example.com',
      'http://a.example?query',
      'ftp://example.com/file',
      'https://api.example.com/static/app.js?v=/./',
      'https://api.example.com/.well-known/x',
      'https://api.example.com/a%2eb/c',
    ]
    for (const url of urls) expect(pathOf(new URL(url).href), url).toBe(new URL(url).pathname)
    // Requests refuse URLs with credentials.
    for (const url of urls.filter((u) => !u.includes('@'))) {
      expect(pathOf(new Request(url).url), url).toBe(new URL(url).pathname)
    }
  })

  // What Deno.serve puts in request.url: the request-target and Host header as the client sent them.
  it('reads no path from a raw request-target with a dot segment, a backslash, a tab or a line break', () => {
    for (const url of [
      'http://api.example.com/v1/../admin',
      'http://api.example.com/v1/%2e%2e/admin',
      'http://api.example.com/v1/%2E%2e/admin',
      'http://api.example.com/v1/%2E./admin',
      'http://api.example.com/v1/.%2E/admin?x=1',
      'http://api.example.com/v1/./admin#f',
      'http://api.example.com/admin/../v1/chat',
      'http://api.example.com/v1/..',
      'http://api.example.com/v1/%2e',
      'http://api.example.com/v1/..\\admin',
      'http://api.example.com/v1\\admin',
      'http://api.example.com/v1/a\tb',
      'http://api.example.com/v1/a\nb',
      'https://api.example.com/v1/a/../../admin/x',
    ]) {
      expect(pathOf(url), url).toBeUndefined()
    }
  })

  it('reads no path when a raw Host header holds "\\", "?" or "#", is empty, or the URL has no path', () => {
    for (const url of [
      // Deno: `Host: /v1` before `GET /admin/users`. A URL parser and Hono's getPath() read the
      // path /admin/users (host "v1"); slicing from the scheme read /v1/admin/users.
      'http:///v1/admin/users',
      'https:///x/t/globex/invoices',
      'http://x\\admin/v1/chat',
      'http://x?y/v1/chat',
      'http://x#y/v1/chat',
      'http://x',
      'nonsense',
    ]) {
      expect(pathOf(url), url).toBeUndefined()
    }
  })

  it('keeps dots and percent-encoding that are not dot segments, and a backslash after the path', () => {
    const kept: [string, string][] = [
      ['https://api.example.com/.well-known/x', '/.well-known/x'],
      ['https://api.example.com/v1/a..b/...', '/v1/a..b/...'],
      ['https://api.example.com/a%2eb/c', '/a%2eb/c'],
      ['https://api.example.com/v1/..%2fadmin', '/v1/..%2fadmin'],
      ['https://api.example.com/v1/chat?q=a\\b/../c', '/v1/chat'],
    ]
    for (const [url, path] of kept) expect(pathOf(url), url).toBe(path)
  })

  it('never answers a path a URL parser would read differently (property)', () => {
    const segment = fc.stringMatching(/^[a-z0-9.%~_-]{0,6}$/)
    fc.assert(
      fc.property(
        fc.array(fc.oneof(segment, fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2e')), { maxLength: 6 }),
        (segments) => {
          const url = `http://api.example.com/${segments.join('/')}`
          const path = pathOf(url)
          if (path !== undefined) expect(path).toBe(new URL(url).pathname)
        },
      ),
    )
  })
})
