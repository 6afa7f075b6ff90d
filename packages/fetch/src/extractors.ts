import { InvalidTenantIdError, isThenable } from '@tenant/core'
import { checkToken, invalidOption } from './options'
import { AMBIGUOUS_URL, parsedUrl, pathOf, routerDecoded, tryDecode } from './path'
import type { MaybePromise } from './types'

/**
 * Finds the tenant id a request names. Return `undefined` when the request names none; the
 * resolver validates what is returned.
 */
export interface TenantExtractor {
  /** Where the id comes from, as reported in `onResolve` events, e.g. `'header:X-Tenant-ID'`. */
  readonly source: string
  /** The tenant id the request names, or `undefined` when it names none (an empty value counts as none). */
  extract(request: Request): MaybePromise<string | undefined>
}

/** An extractor that tries several in order; see {@link chain}. */
export interface ChainExtractor extends TenantExtractor {
  readonly extractors: readonly TenantExtractor[]
}

/**
 * The request's URL, parsed, or `undefined` when a URL parser refuses its host: @hono/node-server
 * builds `request.url` from a Host header such as `1.2.3.4.5` or `acme.example.123` without
 * parsing it, and such a host names no tenant. A URL whose readers disagree (see `pathOf`) names
 * no tenant either, and is refused.
 */
function urlOf(request: Request): URL | undefined {
  if (pathOf(request.url) === undefined) throw new InvalidTenantIdError(AMBIGUOUS_URL)
  return parsedUrl(request.url)
}

// The query of a request URL; of one whose host a URL parser refuses, read from the text after
// the '?' (which `pathOf` has checked is not in the authority), as routers read it.
function searchParamsOf(request: Request): URLSearchParams {
  const url = urlOf(request)
  if (url !== undefined) return url.searchParams
  const text = request.url
  const start = text.indexOf('?')
  if (start === -1) return new URLSearchParams()
  const fragment = text.indexOf('#', start)
  return new URLSearchParams(text.slice(start + 1, fragment === -1 ? undefined : fragment))
}

// Cookie syntax (RFC 6265) allows spaces and tabs around names and values, nothing else:
// String.prototype.trim() also strips U+00A0 and other spaces a framework's cookie parser keeps, so
// "\u00a0tenant=acme" would be read as this cookie here and as another one by the app.
const OWS = /^[ \t]+|[ \t]+$/g

function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value
}

/**
 * Reads the tenant id from a request header. An empty header counts as absent; a repeated
 * header (which Fetch joins with `, `) is an invalid id, not a choice.
 *
 * @param name @default 'X-Tenant-ID'
 * @example
 * ```ts
 * tenantResolver({ extractors: [fromHeader('X-Org')] })
 * ```
 */
export function fromHeader(name = 'X-Tenant-ID'): TenantExtractor {
  checkToken('fromHeader.name', name)
  return {
    source: `header:${name}`,
    extract: (request) => nonEmpty(request.headers.get(name)),
  }
}

/**
 * Reads the tenant id from a query parameter. Repeated with different values it is an invalid id:
 * one framework reads the first, another the last, so neither can be trusted to be the one the app uses.
 *
 * @param name @default 'tenant'
 * @example
 * ```ts
 * fromQuery('org') // GET /reports?org=acme
 * ```
 */
export function fromQuery(name = 'tenant'): TenantExtractor {
  if (typeof name !== 'string' || name === '')
    throw invalidOption('fromQuery.name', 'must be a non-empty string')
  return {
    source: `query:${name}`,
    extract(request) {
      const values = searchParamsOf(request).getAll(name)
      // A repeated parameter is read by one framework as its first value, by another as its last.
      if (values.length > 1 && values.some((value) => value !== values[0])) {
        throw new InvalidTenantIdError(
          `the query parameter "${name}" is sent more than once with different values`,
        )
      }
      return nonEmpty(values[0] ?? null)
    },
  }
}

/**
 * Reads the tenant id from a cookie (percent-decoded, surrounding double quotes removed). Only the
 * spaces and tabs cookie syntax allows are trimmed; repeated with different values it is an invalid id.
 *
 * @param name @default 'tenant'
 * @example
 * ```ts
 * fromCookie('org') // Cookie: org=acme
 * ```
 */
export function fromCookie(name = 'tenant'): TenantExtractor {
  checkToken('fromCookie.name', name, 'a cookie name')
  return {
    source: `cookie:${name}`,
    extract(request) {
      const header = request.headers.get('Cookie')
      if (!header) return undefined
      let found: string | undefined
      for (const part of header.split(';')) {
        const eq = part.indexOf('=')
        if (eq === -1 || part.slice(0, eq).replace(OWS, '') !== name) continue
        let value = part.slice(eq + 1).replace(OWS, '')
        if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
        try {
          value = decodeURIComponent(value)
        } catch {
          // Not valid percent-encoding: let id validation refuse it.
        }
        // A repeated cookie is read by one framework as its first value, by another as its last.
        if (found !== undefined && value !== found) {
          throw new InvalidTenantIdError(`the cookie "${name}" is sent more than once with different values`)
        }
        found = value
      }
      return nonEmpty(found)
    },
  }
}

/** Options of {@link fromSubdomain}. */
export interface SubdomainOptions {
  /**
   * Labels that are never tenants.
   * @default ['www']
   */
  ignore?: string[]
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/

/**
 * Reads the tenant id from the label just left of a base domain: `acme.example.com` with base
 * `example.com` is `acme`. The apex itself, deeper names (`a.b.example.com`), other hosts and IP
 * addresses name no tenant. Host names are case-insensitive, so ids read here are lower case.
 * With nested bases (`['example.com', 'eu.example.com']`) the longest that matches is the host's
 * base, whatever the order given, and a host equal to any base is an apex: `eu.example.com` names
 * no tenant, `acme.eu.example.com` is `acme`.
 *
 * The base domain is required: without it `example.co.uk` would read as tenant `example`.
 *
 * @example
 * ```ts
 * fromSubdomain(['example.com', 'localhost']) // acme.example.com, acme.localhost:8787
 * ```
 */
export function fromSubdomain(
  baseDomain: string | string[],
  options: SubdomainOptions = {},
): TenantExtractor {
  const bases = (Array.isArray(baseDomain) ? baseDomain : [baseDomain]).map((base) => {
    if (typeof base !== 'string' || base.replace(/^\.+|\.+$/g, '') === '') {
      throw invalidOption('fromSubdomain.baseDomain', 'must be a domain name such as "example.com"')
    }
    return base.replace(/^\.+|\.+$/g, '').toLowerCase()
  })
  if (bases.length === 0) throw invalidOption('fromSubdomain.baseDomain', 'give at least one base domain')
  // Longest first: with `example.com` tried first, `eu.example.com` (a base of its own) would read
  // as tenant `eu`, and every tenant under it as a deeper name of `example.com`, i.e. none.
  bases.sort((a, b) => b.length - a.length)
  const ignore = new Set((options.ignore ?? ['www']).map((label) => label.toLowerCase()))
  return {
    source: 'subdomain',
    extract(request) {
      const url = urlOf(request)
      if (url === undefined) return undefined
      const host = url.hostname.replace(/\.$/, '')
      if (host.startsWith('[') || IPV4.test(host)) return undefined
      for (const base of bases) {
        if (host === base) return undefined
        if (!host.endsWith(`.${base}`)) continue
        const label = host.slice(0, -(base.length + 1))
        if (label === '' || label.includes('.') || ignore.has(label)) return undefined
        return label
      }
      return undefined
    },
  }
}

/**
 * Reads the tenant id from the path segment after a prefix: `/t/acme/invoices` with prefix `/t/`
 * is `acme`. The path is left as it is; route on the full path.
 *
 * Routers match a percent-decoded path (Hono's `getPath()` decodes all but reserved characters,
 * others decode those too, a proxy in front may decode once more), so percent-encoding in the
 * prefix or the tenant segment (`/%74/globex/`, `/t/%61cme/`) is refused as an invalid id (400)
 * whenever any of those readings names a tenant: one that the router and this extractor could
 * read differently. Clients never encode these characters (RFC 3986 section 2.3); encoding
 * elsewhere in the path (`/t/acme/a%20b`) is fine.
 *
 * @param prefix @default '/t/'
 * @example
 * ```ts
 * fromPathPrefix('/tenants/') // /tenants/acme/usage
 * ```
 */
export function fromPathPrefix(prefix = '/t/'): TenantExtractor {
  if (typeof prefix !== 'string') throw invalidOption('fromPathPrefix.prefix', 'must be a string')
  const normalized = `/${prefix.replace(/^\/+|\/+$/g, '')}/`.replace(/^\/\/$/, '/')
  return {
    source: `path:${normalized}`,
    extract(request) {
      const path = pathOf(request.url)
      if (path === undefined) throw new InvalidTenantIdError(AMBIGUOUS_URL)
      const id = segmentAfter(path, normalized)
      if (!path.includes('%')) return id
      // The router reads the decoded path: every reading must name the same tenant, or none.
      if (
        segmentAfter(routerDecoded(path), normalized) !== id ||
        segmentAfter(fullyDecoded(path), normalized) !== id
      ) {
        throw new InvalidTenantIdError(
          `the path names its tenant (after "${normalized}") with percent-encoding, which routers decode differently: send it unencoded`,
        )
      }
      return id
    },
  }
}

function segmentAfter(path: string, prefix: string): string | undefined {
  if (!path.startsWith(prefix)) return undefined
  const rest = path.slice(prefix.length)
  const end = rest.indexOf('/')
  return nonEmpty(end === -1 ? rest : rest.slice(0, end))
}

// A router that decodes every escape, `%2F` included, behind a proxy that decoded once already:
// decoded until nothing changes, in at most four rounds (deeper layers are no real deployment).
function fullyDecoded(path: string): string {
  let current = path
  for (let round = 0; round < 4 && current.includes('%'); round++) {
    const next = tryDecode(current, decodeURIComponent)
    if (next === current) break
    current = next
  }
  return current
}

/**
 * Tries extractors in order; the first that finds an id wins. When the resolver has a principal's
 * tenant, every member is read instead, and each id found must be the principal's (403
 * `tenant_mismatch` otherwise), like the resolver's own list.
 *
 * @example
 * ```ts
 * tenantResolver({ extractors: [chain(fromHeader(), fromSubdomain('example.com'))] })
 * ```
 */
export function chain(...extractors: TenantExtractor[]): ChainExtractor {
  extractors.forEach((extractor, index) => {
    if (typeof extractor?.extract !== 'function') {
      throw invalidOption(`chain(${index})`, 'is not an extractor (it needs extract(request))')
    }
  })
  return {
    source: `chain(${extractors.map((e) => e.source).join(',')})`,
    extractors,
    async extract(request) {
      return (await extractFrom(this, request))?.tenantId
    },
  }
}

/** The id an extractor found and where: what the resolver reports as the `source`. Internal. */
export interface Found {
  tenantId: string
  source: string
}

/**
 * Runs an extractor; for a chain, reports which member found the id. Synchronous while the
 * extractors are (the built-in ones are), so the resolver awaits only real promises. Internal.
 */
export function extractFrom(
  extractor: TenantExtractor,
  request: Request,
): Found | undefined | Promise<Found | undefined> {
  const members = (extractor as Partial<ChainExtractor>).extractors
  if (members) return firstOf(members, 0, request)
  const tenantId = extractor.extract(request)
  return isThenable(tenantId)
    ? Promise.resolve(tenantId).then((id) => found(id, extractor.source))
    : found(tenantId, extractor.source)
}

function firstOf(
  members: readonly TenantExtractor[],
  from: number,
  request: Request,
): Found | undefined | Promise<Found | undefined> {
  for (let i = from; i < members.length; i++) {
    const result = extractFrom(members[i]!, request)
    if (isThenable(result)) return result.then((hit) => hit ?? firstOf(members, i + 1, request))
    if (result !== undefined) return result
  }
  return undefined
}

function found(tenantId: string | null | undefined, source: string): Found | undefined {
  return tenantId === undefined || tenantId === null || tenantId === '' ? undefined : { tenantId, source }
}

/**
 * Runs an extractor and, for a chain, every member: every id the request names, in order, where
 * {@link extractFrom} stops at the first. What the resolver checks against a principal's tenant,
 * which no part of the request may contradict. Synchronous while the extractors are. Internal.
 */
export function extractEvery(
  extractor: TenantExtractor,
  request: Request,
  into: Found[] = [],
): Found[] | Promise<Found[]> {
  const members = (extractor as Partial<ChainExtractor>).extractors
  if (members) return everyOf(members, 0, request, into)
  const tenantId = extractor.extract(request)
  if (isThenable(tenantId)) {
    return Promise.resolve(tenantId).then((id) => collect(into, found(id, extractor.source)))
  }
  return collect(into, found(tenantId, extractor.source))
}

function everyOf(
  members: readonly TenantExtractor[],
  from: number,
  request: Request,
  into: Found[],
): Found[] | Promise<Found[]> {
  for (let i = from; i < members.length; i++) {
    const result = extractEvery(members[i]!, request, into)
    if (isThenable(result)) return result.then(() => everyOf(members, i + 1, request, into))
  }
  return into
}

function collect(into: Found[], hit: Found | undefined): Found[] {
  if (hit !== undefined) into.push(hit)
  return into
}
