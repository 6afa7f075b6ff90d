// What makes `new URL(url).pathname` differ from the text of the path, once a '.', '%' or '\'
// is in it: a dot segment ('/.', and '%2e' in any case, which URL reads as a dot), a backslash
// (a separator in http(s) URLs), a tab or line break (which URL drops).
const NOT_NORMAL = /\/\.|%2e|[\\\t\n\r]/i

/**
 * `new URL(url).pathname` of `request.url`: the path an app that routes on the URL sees, dot
 * segments (`..`, `%2e%2e`) resolved. The policy stage reads the path of every request, and a URL
 * parse costs about ten times the rest of this, so a path that is already normal is sliced out as
 * text. "Already normal" is checked, not assumed: `Deno.serve` hands over the raw request-target
 * and Host header (`http://host/v1/../admin`, `http://x\admin/v1`), where the serialized URLs of
 * other runtimes have them resolved. A path without '.', '%' or '\' (most API paths) needs no
 * more than those three scans; anything else that could read differently (a dot segment, a
 * backslash, a '?' or '#' in the authority, another scheme) goes through the URL parser.
 */
export function pathOf(url: string): string {
  const from = url.startsWith('https://') ? 8 : url.startsWith('http://') ? 7 : -1
  const start = from === -1 ? -1 : url.indexOf('/', from)
  if (start === -1) return new URL(url).pathname
  // Searched from the authority: a '?' or '#' there (a raw Host header) ends the authority and
  // leaves URL a path of '/'.
  let end = url.length
  const query = url.indexOf('?', from)
  if (query !== -1) end = query
  const fragment = url.indexOf('#', from)
  if (fragment !== -1 && fragment < end) end = fragment
  if (end < start) return new URL(url).pathname
  const path = url.slice(start, end)
  // A backslash in the authority starts URL's path there (`http://x\admin/v1` is `/admin/v1`).
  if (path.indexOf('.') === -1 && path.indexOf('%') === -1 && url.indexOf('\\', from) === -1) return path
  return NOT_NORMAL.test(path) || url.indexOf('\\', from) !== -1 ? new URL(url).pathname : path
}
