import type { PolicyProvider } from './config'
import { configSource, evaluateNow, type FastPolicyEvaluator, promiseOf } from './fast-path'
import type { PolicyDecision, PolicyEvaluator, PolicyRequest, PolicyRule } from './policy'
import { providedConfig } from './provided-config'
import type { PolicyConfig } from './schemas'
import { validateTenantId } from './tenant-id'
import { assertMethods, invalidOption } from './validate'

/** Options of {@link ConfigPolicyEvaluator}. */
export interface ConfigPolicyEvaluatorOptions {
  /**
   * When true, a request that does not name a model (tool, method, path) is denied by a
   * non-empty allow-list for that dimension instead of passing it. Empty lists still allow all.
   * @default false
   */
  strict?: boolean
}

// Long enough to recognise the value in a log, short enough that a hostile header cannot bloat it.
const MAX_ECHO = 100

function describe(value: string): string {
  return JSON.stringify(value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}...` : value)
}

/**
 * True when `path` is allowed by one `entry`: an entry ending in `*` matches every path that
 * starts with the text before the `*` (so `*` alone matches every path), any other entry must
 * equal the path exactly. Nothing is normalised: a trailing slash is significant, and the
 * prefix is plain text, so `/v1*` also matches `/v1beta` while `/v1/*` does not match `/v1`.
 *
 * @example
 * ```ts
 * pathMatches('/v1/*', '/v1/chat') // true
 * pathMatches('/v1/*', '/v1') // false: list '/v1' as well
 * pathMatches('*', '/anything') // true
 * ```
 */
export function pathMatches(entry: string, path: string): boolean {
  const prefix = entry.length - 1
  if (prefix < 0 || entry.charCodeAt(prefix) !== STAR) return path === entry
  // The prefix compared in place: a slice per entry per request would allocate a string.
  if (path.length < prefix) return false
  for (let i = 0; i < prefix; i++) if (path.charCodeAt(i) !== entry.charCodeAt(i)) return false
  return true
}

const STAR = 42 // '*'

function typeName(value: unknown): string {
  if (value === null) return 'null'
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

// Bad request input (`{ model: ['gpt-4o'] }` from a JSON body) fails closed as a denial: @tenant/fetch
// answers it 403 `tenant_policy_denied` with the same words.
function invalidPolicyValue(rule: PolicyRule, value: unknown): PolicyDecision {
  return { allowed: false, rule, reason: `${rule} must be a string, got ${typeName(value)}` }
}
const POLICY_RULES: readonly PolicyRule[] = ['model', 'tool', 'method', 'path']

/**
 * The denial of a request whose model, tool, method or path is not a string (request input such
 * as a JSON body), in rule order, as {@link ConfigPolicyEvaluator} answers it; undefined when
 * every value is a string or absent. For stages that check the input before any evaluator (one of
 * your own may throw on it, and a throw reads as a failing backend).
 *
 * @example
 * ```ts
 * invalidPolicyRequest({ model: ['gpt-4o'] }) // { allowed: false, rule: 'model', reason: 'model must be a string, got an array' }
 * ```
 */
export function invalidPolicyRequest(request: PolicyRequest): PolicyDecision | undefined {
  for (const rule of POLICY_RULES) {
    const value: unknown = request[rule]
    if (value !== undefined && typeof value !== 'string') return invalidPolicyValue(rule, value)
  }
  return undefined
}

const same = (entry: string, value: string) => entry === value
// Methods come in upper case almost always: the exact comparison spares two new strings per entry.
// A GET entry allows HEAD too, as routers answer HEAD with the GET handler (Hono does).
const sameMethod = (entry: string, value: string) =>
  entry === value ||
  methodKey(entry) === methodKey(value) ||
  (methodKey(value) === 'HEAD' && methodKey(entry) === 'GET')

// Methods are ASCII tokens, so only ASCII letters fold: String#toUpperCase also maps some other
// letters onto ASCII ones ('ſ' to 'S', 'ﬀ' to 'FF'), which would let an entry `poſt` allow POST.
// A value with any other character is compared as written.
function methodKey(method: string): string {
  for (let i = 0; i < method.length; i++) if (method.charCodeAt(i) > 0x7f) return method
  return method.toUpperCase()
}

/**
 * A {@link PolicyEvaluator} that reads each tenant's allow-lists from a {@link PolicyProvider}
 * (any `ConfigManager`) on every call, so a policy change applies to the next request.
 *
 * Rules, checked in this order, the first refusal wins:
 * - `model`, `tool`: exact, case-sensitive match (`*` has no special meaning).
 * - `method`: case-insensitive match of ASCII letters (`get` allows `GET`); `GET` allows `HEAD` too, which routers
 *   answer with the GET handler (a `HEAD` entry therefore still runs GET handlers).
 * - `path`: exact match, or a prefix match for entries ending in `*`; see {@link pathMatches}.
 *
 * An empty allow-list allows everything in its dimension. A request that does not name a value
 * for a dimension (`undefined`) passes that check unless `strict` is set and the list is not
 * empty. An empty string is a named value, and is allowed only by an empty list. A value that is
 * not a string (`null`, an array, an object: request input of the wrong shape) is denied by
 * every list, empty ones included, with the dimension as `rule`; it is never thrown.
 *
 * @example
 * ```ts
 * const policy = new ConfigPolicyEvaluator(configs, { strict: true })
 * const decision = await policy.evaluate('acme', { model: 'gpt-4o', method: 'POST', path: '/v1/chat' })
 * if (!decision.allowed) console.log(decision.rule, decision.reason)
 * ```
 */
export class ConfigPolicyEvaluator implements PolicyEvaluator, FastPolicyEvaluator {
  readonly #provider: PolicyProvider
  readonly #strict: boolean

  constructor(provider: PolicyProvider, options: ConfigPolicyEvaluatorOptions = {}) {
    assertMethods(provider, 'provider', ['policyConfig'])
    if (options.strict !== undefined && typeof options.strict !== 'boolean') {
      throw invalidOption('strict', 'must be a boolean')
    }
    this.#provider = provider
    this.#strict = options.strict ?? false
  }

  /** The provider the evaluator reads policies from (see `configSource`). */
  get [configSource](): object {
    return this.#provider
  }

  /** Throws `TenantNotFoundError` for an unknown tenant, `InvalidTenantIdError` for a bad id. */
  evaluate(tenantId: string, request: PolicyRequest = {}): Promise<PolicyDecision> {
    return promiseOf(() => this[evaluateNow](tenantId, request, undefined))
  }

  /**
   * `evaluate` as a value when the config needs no I/O (see `evaluateNow` in core); `config` is the
   * tenant's policy as this evaluator's provider answered it, for a caller that already read it.
   */
  [evaluateNow](
    tenantId: string,
    request: PolicyRequest,
    config: PolicyConfig | undefined,
  ): PolicyDecision | Promise<PolicyDecision> {
    // A config read from this evaluator's provider was read for a valid, stored id.
    if (config !== undefined) return this.#decide(request, config)
    validateTenantId(tenantId)
    const read = providedConfig(this.#provider, tenantId, 'policy')
    return read instanceof Promise
      ? read.then((policy) => this.#decide(request, policy))
      : this.#decide(request, read)
  }

  #decide(request: PolicyRequest, policy: PolicyConfig): PolicyDecision {
    return (
      this.#check('model', request.model, policy.allowedModels) ??
      this.#check('tool', request.tool, policy.allowedTools) ??
      this.#check('method', request.method, policy.allowedMethods) ??
      this.#check('path', request.path, policy.allowedPaths) ?? { allowed: true }
    )
  }

  #check(
    rule: PolicyRule,
    value: string | undefined,
    allowed: readonly string[] | undefined,
  ): PolicyDecision | undefined {
    // A value of another type comes from the request (a JSON body read by `extract`), not from the
    // config: it is denied, whatever the list says, rather than thrown. A throw reads as a
    // failing backend, which an HTTP stage under failOpen would let through.
    if (value !== undefined && typeof value !== 'string') return invalidPolicyValue(rule, value)
    if (!allowed || allowed.length === 0) return undefined
    if (value === undefined) {
      return this.#strict
        ? { allowed: false, rule, reason: `request names no ${rule}; one is required` }
        : undefined
    }
    if (listAllows(rule, allowed, value)) return undefined
    return { allowed: false, rule, reason: `${rule} ${describe(value)} is not allowed` }
  }
}

const matchers: Record<PolicyRule, (entry: string, value: string) => boolean> = {
  model: same,
  tool: same,
  method: sameMethod,
  path: pathMatches,
}

/** An allow-list made ready for lookups: its exact entries in a Set, its prefix entries apart. */
interface CompiledList {
  readonly exact: ReadonlySet<string>
  readonly prefixes: readonly string[]
}

// One cache per dimension, keyed by the list itself: a frozen list (the config managers hand out
// deeply frozen configs) cannot change, so it is compiled once, and a policy of 10,000 entries
// costs a hash lookup per request instead of a scan (measured: up to 36 ms for long entries).
const compiledLists: Record<PolicyRule, WeakMap<readonly string[], CompiledList>> = {
  model: new WeakMap(),
  tool: new WeakMap(),
  method: new WeakMap(),
  path: new WeakMap(),
}

function compileList(rule: PolicyRule, list: readonly string[]): CompiledList {
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const entry of list) {
    if (rule === 'method') exact.add(methodKey(entry))
    else if (rule === 'path' && entry.charCodeAt(entry.length - 1) === STAR) prefixes.push(entry.slice(0, -1))
    else exact.add(entry)
  }
  return { exact, prefixes }
}

/** Whether one entry of `list` allows `value`: what `matchers[rule]` says of any entry. */
function listAllows(rule: PolicyRule, list: readonly string[], value: string): boolean {
  // The cache first: only frozen lists get in, and a frozen list stays frozen. Object.isFrozen
  // costs more than the lookup on JavaScriptCore (Bun), so a compiled list skips it.
  let compiled = compiledLists[rule].get(list)
  if (compiled === undefined) {
    if (!Object.isFrozen(list)) {
      const matches = matchers[rule]
      for (const entry of list) if (matches(entry, value)) return true
      return false
    }
    compiled = compileList(rule, list)
    compiledLists[rule].set(list, compiled)
  }
  if (rule === 'method') {
    const key = methodKey(value)
    return compiled.exact.has(key) || (key === 'HEAD' && compiled.exact.has('GET'))
  }
  if (compiled.exact.has(value)) return true
  for (const prefix of compiled.prefixes) if (value.startsWith(prefix)) return true
  return false
}
