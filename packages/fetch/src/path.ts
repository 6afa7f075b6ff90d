// A segment of only dots, written or percent-encoded: `/./`, `/../`, `/%2e%2E/`, `/.%2e` at the end.
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?=[/?#]|$)/i
// Characters a URL parser drops from a path, where a router keeps them.
const DROPPED = /[\t\n\r]/
// What a path must hold for either of the above to apply.
const SUSPECT = /[.%\t\n\r]/

/**
 * The path of a request URL as every reader of it sees it, or `undefined` when readers disagree.
 *
 * Runtimes serialize `request.url` differently: Node, Bun and workerd resolve dot segments and
 * reject a malformed Host, while `Deno.serve` hands over the raw request-target and Host header
 * (`http://host/v1/../admin`, `http://host\admin/v1/chat`). On such a URL a URL parser
 * (`new URL(url).pathname`) and a router that slices the text (Hono's `getPath()`) see different
 * paths, so a policy or extractor that reads one while the app routes on the other can be
 * bypassed, in either direction. Those URLs name no path: `undefined`, which the policy denies and
 * the URL extractors refuse. They are:
 * - a dot segment in the path (`.`, `..`, `%2e` in any case);
 * - a backslash, tab or line break in the path, or a backslash in the authority;
 * - a `?` or `#` in the authority (a raw Host header), before the path begins;
 * - an empty authority (a raw Host header that starts with `/`: `http:///v1/admin`, whose path a
 *   URL parser and Hono read as `/admin`, the `v1` being the host);
 * - a URL without a path, or that `new URL` cannot parse.
 *
 * Clients and proxies normalize these away, so a real request never has one. Every other URL's
 * path is sliced out as text, which is what both readers see; most API paths need four scans.
 *
 * @example
 * ```ts
 * pathOf('https://api.example.com/v1/chat?x=1') // '/v1/chat'
 * pathOf('http://api.example.com/v1/../admin') // undefined (raw request-target on Deno)
 * ```
 */
export function pathOf(url: string): string | undefined {
  const from = url.startsWith('https://') ? 8 : url.startsWith('http://') ? 7 : -1
  if (from === -1) return parsedPath(url)
  // An empty authority: readers that skip it as the host (a URL parser, Hono's getPath()) start
  // the path at the next '/', not at this one.
  if (url.charCodeAt(from) === 47) return undefined
  const start = url.indexOf('/', from)
  let end = url.length
  const query = url.indexOf('?', from)
  if (query !== -1) end = query
  const fragment = url.indexOf('#', from)
  if (fragment !== -1 && fragment < end) end = fragment
  // No path, or a '?' / '#' in the authority.
  if (start === -1 || end < start) return undefined
  const backslash = url.indexOf('\\', from)
  if (backslash !== -1 && backslash < end) return undefined
  const path = url.slice(start, end)
  if (!SUSPECT.test(path)) return path
  return DOT_SEGMENT.test(path) || DROPPED.test(path) ? undefined : path
}

function parsedPath(url: string): string | undefined {
  return parsedUrl(url)?.pathname
}

/** `url` as a URL parser reads it, or `undefined` when it refuses it. Internal. */
export function parsedUrl(url: string): URL | undefined {
  try {
    return new URL(url)
  } catch {
    return undefined
  }
}

/**
 * A path percent-decoded as Hono's router decodes it (`getPath()`): decodeURI, which keeps
 * reserved characters (`%2F`, `%3F`, ...) encoded, with `%25` kept too; a malformed escape stays
 * as it is. Internal.
 */
export function routerDecoded(path: string): string {
  return path.includes('%') ? tryDecode(path, decodeURIKeepingPercent) : path
}

function decodeURIKeepingPercent(value: string): string {
  return decodeURI(value.includes('%25') ? value.replace(/%25/g, '%2525') : value)
}

/**
 * As Hono's tryDecode: a malformed escape (`%zz`, a broken UTF-8 sequence) stays as it is, and the
 * escapes around it are still decoded. Internal.
 */
export function tryDecode(value: string, decode: (text: string) => string): string {
  try {
    return decode(value)
  } catch {
    return value.replace(/(?:%[0-9A-Fa-f]{2})+/g, (match) => {
      try {
        return decode(match)
      } catch {
        return match
      }
    })
  }
}

/** Why {@link pathOf} reads no path from a URL, for error messages. */
export const AMBIGUOUS_URL =
  'the request URL reads differently to a URL parser and to a router (a dot segment, a backslash, a "?" or "#" in the host, or an empty host): send it normalized'
