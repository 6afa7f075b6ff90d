import fc from 'fast-check'
import { beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from './clock'
import type { PolicyProvider } from './config'
import { InvalidTenantConfigError, InvalidTenantIdError, TenantNotFoundError } from './errors'
import { InMemoryConfigManager } from './in-memory-config-manager'
import { deepFreeze } from './json'
import { ConfigPolicyEvaluator, pathMatches } from './policy-evaluator'
import type { PolicyConfig } from './schemas'

describe('ConfigPolicyEvaluator', () => {
  let configs: InMemoryConfigManager
  const withPolicy = async (policy: Partial<PolicyConfig>, id = 'acme') => {
    await configs.setTenantConfig({ id, policy })
    return id
  }

  beforeEach(() => {
    configs = new InMemoryConfigManager({ clock: new ManualClock(1) })
  })

  it('allows everything when every list is empty', async () => {
    const policy = new ConfigPolicyEvaluator(configs, { strict: true })
    await withPolicy({})
    expect(await policy.evaluate('acme', {})).toEqual({ allowed: true })
    expect(await policy.evaluate('acme', { model: 'any', tool: 'any', method: 'PATCH', path: '/x' })).toEqual(
      {
        allowed: true,
      },
    )
  })

  it('allows listed models and denies others, exactly and case-sensitively', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedModels: ['gpt-4o', 'claude-sonnet'] })
    expect(await policy.evaluate('acme', { model: 'gpt-4o' })).toEqual({ allowed: true })
    expect(await policy.evaluate('acme', { model: 'claude-sonnet' })).toEqual({ allowed: true })
    for (const model of ['gpt-4', 'GPT-4o', 'gpt-4o-mini', ' gpt-4o', '', '*']) {
      const decision = await policy.evaluate('acme', { model })
      expect(decision, model).toEqual({
        allowed: false,
        rule: 'model',
        reason: `model ${JSON.stringify(model)} is not allowed`,
      })
    }
  })

  it('treats "*" in a model or tool list as a literal name', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedModels: ['*'], allowedTools: ['web*'] })
    expect((await policy.evaluate('acme', { model: 'gpt-4o' })).allowed).toBe(false)
    expect((await policy.evaluate('acme', { model: '*' })).allowed).toBe(true)
    expect((await policy.evaluate('acme', { tool: 'web-search' })).allowed).toBe(false)
  })

  it('allows listed tools and denies others', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedTools: ['search', 'calculator'] })
    expect(await policy.evaluate('acme', { tool: 'search' })).toEqual({ allowed: true })
    expect(await policy.evaluate('acme', { tool: 'shell' })).toMatchObject({ allowed: false, rule: 'tool' })
  })

  it('matches methods case-insensitively', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedMethods: ['get', 'POST'] })
    for (const method of ['GET', 'get', 'Get', 'post', 'POST']) {
      expect(await policy.evaluate('acme', { method }), method).toEqual({ allowed: true })
    }
    expect(await policy.evaluate('acme', { method: 'DELETE' })).toEqual({
      allowed: false,
      rule: 'method',
      reason: 'method "DELETE" is not allowed',
    })
  })

  it('lets GET allow HEAD, which routers answer with the GET handler, and nothing else', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedMethods: ['get'] })
    for (const method of ['HEAD', 'head', 'GET']) {
      expect(await policy.evaluate('acme', { method }), method).toEqual({ allowed: true })
    }
    await withPolicy({ allowedMethods: ['POST', 'HEAD'] })
    expect(await policy.evaluate('acme', { method: 'GET' })).toMatchObject({ allowed: false, rule: 'method' })
    await withPolicy({ allowedMethods: ['POST'] })
    expect(await policy.evaluate('acme', { method: 'HEAD' })).toMatchObject({
      allowed: false,
      rule: 'method',
    })
  })

  it('folds only ASCII letters: an entry whose other letters upper-case to ASCII allows no method', async () => {
    // 'ſ'.toUpperCase() is 'S', 'ı'.toUpperCase() is 'I' and 'ﬀ'.toUpperCase() is 'FF'.
    for (const frozen of [false, true]) {
      const allowedMethods = ['poſt', 'deleteﬀ', 'optıons']
      const policy = new ConfigPolicyEvaluator({
        policyConfig: async () => ({
          allowedModels: [],
          allowedTools: [],
          allowedMethods: frozen ? (Object.freeze([...allowedMethods]) as string[]) : allowedMethods,
          allowedPaths: [],
        }),
      })
      for (const method of ['POST', 'post', 'DELETEFF', 'OPTIONS']) {
        expect(await policy.evaluate('acme', { method }), `${method} frozen=${frozen}`).toMatchObject({
          allowed: false,
          rule: 'method',
        })
      }
      expect(await policy.evaluate('acme', { method: 'poſt' })).toEqual({ allowed: true })
    }
  })

  it('matches paths exactly or by prefix for entries ending in "*"', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedPaths: ['/v1/chat', '/v1/files/*', '/beta*'] })
    const allowed = ['/v1/chat', '/v1/files/', '/v1/files/a', '/v1/files/a/b', '/beta', '/beta/x', '/betamax']
    const denied = ['/v1/chat/', '/v1/chat/x', '/v1/Chat', '/v1/files', '/v1', '/', '/v2/chat', '']
    for (const path of allowed)
      expect(await policy.evaluate('acme', { path }), path).toEqual({ allowed: true })
    for (const path of denied) {
      expect(await policy.evaluate('acme', { path }), path).toMatchObject({ allowed: false, rule: 'path' })
    }
  })

  it('allows every path for the entry "*"', async () => {
    const policy = new ConfigPolicyEvaluator(configs, { strict: true })
    await withPolicy({ allowedPaths: ['*'] })
    for (const path of ['/', '/anything/at/all', '']) {
      expect(await policy.evaluate('acme', { path })).toEqual({ allowed: true })
    }
    // "*" still names a list, so strict mode wants a path.
    expect(await policy.evaluate('acme', {})).toMatchObject({ allowed: false, rule: 'path' })
  })

  it('lets a request that names no value pass, unless strict', async () => {
    await withPolicy({
      allowedModels: ['m'],
      allowedTools: ['t'],
      allowedMethods: ['GET'],
      allowedPaths: ['/p'],
    })
    const lenient = new ConfigPolicyEvaluator(configs)
    const strict = new ConfigPolicyEvaluator(configs, { strict: true })
    expect(await lenient.evaluate('acme', {})).toEqual({ allowed: true })
    expect(await lenient.evaluate('acme')).toEqual({ allowed: true })
    expect(await strict.evaluate('acme', {})).toEqual({
      allowed: false,
      rule: 'model',
      reason: 'request names no model; one is required',
    })
    expect(await strict.evaluate('acme', { model: 'm' })).toMatchObject({ allowed: false, rule: 'tool' })
    expect(await strict.evaluate('acme', { model: 'm', tool: 't' })).toMatchObject({
      allowed: false,
      rule: 'method',
    })
    expect(await strict.evaluate('acme', { model: 'm', tool: 't', method: 'get' })).toMatchObject({
      allowed: false,
      rule: 'path',
    })
    expect(await strict.evaluate('acme', { model: 'm', tool: 't', method: 'get', path: '/p' })).toEqual({
      allowed: true,
    })
  })

  it('in strict mode still allows an unnamed value when that list is empty', async () => {
    await withPolicy({ allowedModels: ['m'] })
    const strict = new ConfigPolicyEvaluator(configs, { strict: true })
    expect(await strict.evaluate('acme', { model: 'm' })).toEqual({ allowed: true })
  })

  it('reports the first refusing rule in the order model, tool, method, path', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({
      allowedModels: ['m'],
      allowedTools: ['t'],
      allowedMethods: ['GET'],
      allowedPaths: ['/p'],
    })
    const bad = { model: 'x', tool: 'x', method: 'PUT', path: '/x' }
    expect((await policy.evaluate('acme', bad)).rule).toBe('model')
    expect((await policy.evaluate('acme', { ...bad, model: 'm' })).rule).toBe('tool')
    expect((await policy.evaluate('acme', { ...bad, model: 'm', tool: 't' })).rule).toBe('method')
    expect((await policy.evaluate('acme', { ...bad, model: 'm', tool: 't', method: 'GET' })).rule).toBe(
      'path',
    )
  })

  it('truncates and quotes long or odd values in the reason', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedModels: ['m'] })
    const decision = await policy.evaluate('acme', { model: `${'x'.repeat(500)}\n` })
    expect(decision.reason).toBe(`model "${'x'.repeat(100)}..." is not allowed`)
    const quoted = await policy.evaluate('acme', { model: 'a"b\n' })
    expect(quoted.reason).toBe('model "a\\"b\\n" is not allowed')
  })

  it('reads the policy on every call, so changes apply at once', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedModels: ['a'] })
    expect((await policy.evaluate('acme', { model: 'b' })).allowed).toBe(false)
    await withPolicy({ allowedModels: ['a', 'b'] })
    expect((await policy.evaluate('acme', { model: 'b' })).allowed).toBe(true)
  })

  it('throws TenantNotFoundError for an unknown tenant and InvalidTenantIdError for a bad id', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await expect(policy.evaluate('nobody', {})).rejects.toBeInstanceOf(TenantNotFoundError)
    await expect(policy.evaluate('a/b', {})).rejects.toBeInstanceOf(InvalidTenantIdError)
    await expect(policy.evaluate('', {})).rejects.toBeInstanceOf(InvalidTenantIdError)
  })

  it('denies a non-string request value (bad request input) instead of throwing, even for an empty list', async () => {
    const policy = new ConfigPolicyEvaluator(configs)
    await withPolicy({ allowedModels: ['gpt-4o'], allowedMethods: ['GET'] })
    const cases: [Record<string, unknown>, string, string][] = [
      [{ method: 1 }, 'method', 'method must be a string, got a number'],
      [{ model: ['gpt-4o'] }, 'model', 'model must be a string, got an array'],
      [{ tool: { name: 'shell' } }, 'tool', 'tool must be a string, got an object'],
      [{ path: null }, 'path', 'path must be a string, got null'],
    ]
    for (const [request, rule, reason] of cases) {
      expect(await policy.evaluate('acme', request as never), rule).toEqual({ allowed: false, rule, reason })
    }
    // The fast path answers the same, and a strict evaluator too.
    const strict = new ConfigPolicyEvaluator(configs, { strict: true })
    expect(await strict.evaluate('acme', { model: ['gpt-4o'] } as never)).toMatchObject({
      allowed: false,
      rule: 'model',
    })
  })

  it('works with any PolicyProvider and tolerates missing lists from untyped ones', async () => {
    const provider: PolicyProvider = { policyConfig: async () => ({ allowedModels: ['m'] }) as PolicyConfig }
    const policy = new ConfigPolicyEvaluator(provider)
    expect(await policy.evaluate('x', { model: 'm', tool: 't', method: 'GET', path: '/' })).toEqual({
      allowed: true,
    })
    expect((await policy.evaluate('x', { model: 'n' })).allowed).toBe(false)
  })

  it('validates its arguments when constructed', () => {
    expect(() => new ConfigPolicyEvaluator({} as never)).toThrow(InvalidTenantConfigError)
    expect(() => new ConfigPolicyEvaluator(undefined as never)).toThrow(InvalidTenantConfigError)
    expect(() => new ConfigPolicyEvaluator(configs, { strict: 'yes' as never })).toThrow(
      InvalidTenantConfigError,
    )
  })
})

describe('pathMatches', () => {
  it.each([
    ['/a', '/a', true],
    ['/a', '/a/', false],
    ['/a/', '/a', false],
    ['/a*', '/a', true],
    ['/a*', '/ab', true],
    ['/a/*', '/a', false],
    ['/a/*', '/a/', true],
    ['*', '/', true],
    ['/a*', '/b/a', false],
  ])('pathMatches(%j, %j) is %s', (entry, path, expected) => {
    expect(pathMatches(entry, path)).toBe(expected)
  })
})

describe('ConfigPolicyEvaluator on frozen policies (compiled once) and on plain ones', () => {
  it('decides the same, entry by entry or by lookup (property)', async () => {
    // Few letters, so entries, prefixes and values often meet; "*" ends prefix entries.
    const text = fc.stringMatching(/^[aAbB/]{0,4}$/)
    const entry = fc.oneof(
      text,
      text.map((t) => `${t}*`),
      fc.constantFrom('GET', 'get', 'HEAD', 'Post', '*', 'poſt', 'POſT', 'geﬀ'),
    )
    const list = fc.array(entry, { maxLength: 6 })
    const value = fc.option(fc.oneof(text, fc.constantFrom('GET', 'head', 'HEAD', 'post', 'poſt', 'GEFF')), {
      nil: undefined,
    })
    await fc.assert(
      fc.asyncProperty(
        fc.record({ allowedModels: list, allowedTools: list, allowedMethods: list, allowedPaths: list }),
        fc.record({ model: value, tool: value, method: value, path: value }),
        fc.boolean(),
        async (policy, request, strict) => {
          const plain = new ConfigPolicyEvaluator({ policyConfig: async () => policy }, { strict })
          const frozen = new ConfigPolicyEvaluator(
            { policyConfig: async () => deepFreeze(JSON.parse(JSON.stringify(policy)) as typeof policy) },
            { strict },
          )
          expect(await frozen.evaluate('acme', request)).toEqual(await plain.evaluate('acme', request))
        },
      ),
      { numRuns: 3000 },
    )
  })
})
