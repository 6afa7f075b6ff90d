import { InvalidTenantIdError, isThenable } from '@tenant/core'
import { checkToken, invalidOption } from './options'
import { AMBIGUOUS_URL, pathOf } from './path'
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

/** The request's URL, parsed; a URL whose readers disagree (see `pathOf`) names no tenant. */
function urlOf(request: Request): URL {
  if (pathOf(request.url) === undefined) throw new InvalidTenantIdError(AMBIGUOUS_URL)
  return new URL(request.url)
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
      const values = urlOf(request).searchParams.getAll(name)
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
  const ignore = new Set((options.ignore ?? ['www']).map((label) => label.toLowerCase()))
  return {
    source: 'subdomain',
    extract(request) {
      const host = urlOf(request).hostname.replace(/\.$/, '')
      if (host.startsWith('[') || IPV4.test(host)) return undefined
      for (const base of bases) {
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
      if (!path.startsWith(normalized)) return undefined
      const rest = path.slice(normalized.length)
      const end = rest.indexOf('/')
      return nonEmpty(end === -1 ? rest : rest.slice(0, end))
    },
  }
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
