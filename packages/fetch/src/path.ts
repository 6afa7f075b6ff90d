/**
 * `new URL(url).pathname` of a serialized http(s) URL (what `request.url` is), without parsing it:
 * the policy stage reads the path of every request, and a URL parse cost more than the rest of the
 * stage. A serialized URL has no '/', '?' or '#' in its authority (they are percent-encoded there),
 * so the path is what lies between the first '/' after the scheme and the first '?' or '#'; its
 * dot segments and percent-encoding were normalised when the URL was serialized. Anything else
 * (another scheme, an unserialized string) goes through the URL parser.
 */
export function pathOf(url: string): string {
  const from = url.startsWith('https://') ? 8 : url.startsWith('http://') ? 7 : -1
  const start = from === -1 ? -1 : url.indexOf('/', from)
  if (start === -1) return new URL(url).pathname
  let end = url.length
  const query = url.indexOf('?', start)
  if (query !== -1) end = query
  const fragment = url.indexOf('#', start)
  if (fragment !== -1 && fragment < end) end = fragment
  return url.slice(start, end)
}
