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
    ]
    for (const url of urls) expect(pathOf(new URL(url).href), url).toBe(new URL(url).pathname)
    // Requests refuse URLs with credentials.
    for (const url of urls.filter((u) => !u.includes('@'))) {
      expect(pathOf(new Request(url).url), url).toBe(new URL(url).pathname)
    }
  })
})
