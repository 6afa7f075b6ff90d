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
  it('resolves dot segments of a raw request-target: ".." , "%2e%2e", "%2E", mixed, and backslashes', () => {
    const raw: [string, string][] = [
      ['http://api.example.com/v1/../admin', '/admin'],
      ['http://api.example.com/v1/%2e%2e/admin', '/admin'],
      ['http://api.example.com/v1/%2E%2e/admin', '/admin'],
      ['http://api.example.com/v1/%2E./admin', '/admin'],
      ['http://api.example.com/v1/.%2E/admin?x=1', '/admin'],
      ['http://api.example.com/v1/./../admin#f', '/admin'],
      ['http://api.example.com/v1/..', '/'],
      ['http://api.example.com/v1/%2e', '/v1/'],
      ['http://api.example.com/v1/..\\admin', '/admin'],
      ['https://api.example.com/v1/a/../../admin/x', '/admin/x'],
    ]
    for (const [url, path] of raw) {
      expect(pathOf(url), url).toBe(path)
      expect(pathOf(url), url).toBe(new URL(url).pathname)
    }
  })

  it('reads the path URL reads when a raw Host header holds "\\", "?" or "#"', () => {
    for (const url of [
      'http://x\\admin/v1/chat',
      'http://x?y/v1/chat',
      'http://x#y/v1/chat',
      'http://x\\admin/v1/../chat',
    ]) {
      expect(pathOf(url), url).toBe(new URL(url).pathname)
    }
    expect(pathOf('http://x\\admin/v1/chat')).toBe('/admin/v1/chat')
  })
})
