import { InvalidTenantConfigError, TenantBackendError } from '@tenant/core'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectIoredis, REDIS_URL, useNodeRedis, usePrivateRedis } from '../test/helpers/redis-env'
import { CAN_SPAWN_REDIS } from '../test/helpers/redis-server'
import { type RedisScriptClient, toScriptClient } from './client'
import { LuaScript, validateTimeout, withBackendTimeout } from './script'

describe('toScriptClient', () => {
  it('rejects values that are not clients', () => {
    expect(() => toScriptClient(null as never)).toThrow(InvalidTenantConfigError)
    expect(() => toScriptClient({} as never)).toThrow(InvalidTenantConfigError)
    expect(() => toScriptClient({ eval: () => 1 } as never)).toThrow(InvalidTenantConfigError)
  })

  it('uses a RedisScriptClient as it is', () => {
    const client: RedisScriptClient = { evalScript: async () => 1, evalScriptSha: async () => 2 }
    expect(toScriptClient(client)).toBe(client)
  })
})

describe('validateTimeout', () => {
  it('defaults to 50 ms and accepts whole ms > 0', () => {
    expect(validateTimeout(undefined)).toBe(50)
    expect(validateTimeout(1)).toBe(1)
  })

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects %s', (value) => {
    expect(() => validateTimeout(value)).toThrow(InvalidTenantConfigError)
  })
})

describe('withBackendTimeout', () => {
  it('passes a value through and wraps a failure in TenantBackendError with its cause', async () => {
    await expect(withBackendTimeout(Promise.resolve(7), 100, 'x')).resolves.toBe(7)
    const cause = new Error('READONLY You cannot write against a read only replica.')
    const error = await withBackendTimeout(Promise.reject(cause), 100, 'consume', 'acme').catch((e) => e)
    expect(error).toBeInstanceOf(TenantBackendError)
    expect(error.code).toBe('tenant_backend_unavailable')
    expect(error.status).toBe(503)
    expect(error.cause).toBe(cause)
    expect(error.tenantId).toBe('acme')
    expect(error.message).toContain('READONLY')
  })

  it('rejects with TenantBackendError when the work outlives the timeout', async () => {
    const never = new Promise<never>(() => {})
    const started = performance.now()
    const error = await withBackendTimeout(never, 20, 'consume').catch((e) => e)
    expect(error).toBeInstanceOf(TenantBackendError)
    expect(error.message).toContain('timed out after 20 ms')
    expect(performance.now() - started).toBeGreaterThanOrEqual(19)
  })
})

/** `inner`, noting each command it sends in `calls` ('evalsha' or 'eval'). */
function recording(inner: RedisScriptClient, calls: string[]): RedisScriptClient {
  return {
    evalScriptSha: (sha, keys, args) => {
      calls.push('evalsha')
      return inner.evalScriptSha(sha, keys, args)
    },
    evalScript: (src, keys, args) => {
      calls.push('eval')
      return inner.evalScript(src, keys, args)
    },
  }
}

describe.runIf(REDIS_URL)('LuaScript against a real Redis', () => {
  let ioredis: Redis
  const nodeRedis = useNodeRedis()

  beforeAll(async () => {
    ioredis = await connectIoredis()
  })

  afterAll(async () => {
    ioredis?.disconnect()
  })

  it('computes the SHA-1 Redis computes', async () => {
    const script = new LuaScript(`return 'sha check ${Math.random()}'`)
    expect(await script.sha()).toBe(await ioredis.script('LOAD', script.source))
  })

  for (const [name, client] of [
    ['ioredis', () => toScriptClient(ioredis)],
    ['node-redis', () => toScriptClient(nodeRedis)],
  ] as const) {
    it(`${name}: loads an unknown script on NOSCRIPT, then runs it by SHA`, async () => {
      // A source no server has seen, so the first EVALSHA must answer NOSCRIPT.
      const script = new LuaScript(`-- ${Math.random()}\nreturn {KEYS[1], ARGV[1], ARGV[2], 42}`)
      const sha = await script.sha()
      expect(await ioredis.script('EXISTS', sha)).toEqual([0])
      expect(await script.run(client(), ['k'], ['a', 'b'])).toEqual(['k', 'a', 'b', 42])
      expect(await ioredis.script('EXISTS', sha)).toEqual([1])
      expect(await script.run(client(), ['k2'], ['c', 'd'])).toEqual(['k2', 'c', 'd', 42])
    })
  }

  it('counts one EVALSHA per run once the script is cached', async () => {
    const calls: string[] = []
    const counting = recording(toScriptClient(ioredis), calls)
    const script = new LuaScript(`-- ${Math.random()}\nreturn 1`)
    await script.run(counting, [], [])
    await script.run(counting, [], [])
    await script.run(counting, [], [])
    expect(calls).toEqual(['evalsha', 'eval', 'evalsha', 'evalsha'])
  })

  it('sends the source once when a burst meets a server without the script', async () => {
    const calls: string[] = []
    const counting = recording(toScriptClient(ioredis), calls)
    const script = new LuaScript(`-- ${Math.random()}\nreturn ARGV[1]`)
    await script.sha()
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => script.run(counting, [], [String(i)])),
    )
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => String(i)))
    // 50 NOSCRIPT answers; the first resends the source, the other 49 wait for it and retry the SHA.
    expect(calls.filter((c) => c === 'eval')).toHaveLength(1)
    expect(calls.filter((c) => c === 'evalsha')).toHaveLength(99)
  })

  it('passes errors other than NOSCRIPT through unchanged', async () => {
    const script = new LuaScript(`-- ${Math.random()}\nreturn redis.error_reply('BOOM broken')`)
    await expect(script.run(toScriptClient(ioredis), [], [])).rejects.toThrow('BOOM broken')
  })
})

describe.runIf(CAN_SPAWN_REDIS)('timeouts against a paused server', () => {
  const server = usePrivateRedis()

  it('times out a script the server does not answer in time, and works once it answers', async () => {
    const script = new LuaScript('return 1')
    const run = () => withBackendTimeout(script.run(toScriptClient(server.client), [], []), 30, 'run')
    await expect(run()).resolves.toBe(1)
    await server.admin.call('CLIENT', 'PAUSE', '300', 'ALL')
    await expect(run()).rejects.toBeInstanceOf(TenantBackendError)
    await server.admin.call('CLIENT', 'UNPAUSE')
    await expect(run()).resolves.toBe(1)
  })
})
