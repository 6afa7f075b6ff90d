// A Worker for test/object-faults.test.ts: TenantQuotaObject with switches that make its next calls
// fail, and scenarios run inside workerd against it (the limiters and managers as a Worker uses them).
import {
  DurableObjectConcurrencyLimiter,
  DurableObjectQuotaManager,
  DurableObjectRateLimiter,
  TenantQuotaObject,
} from '../src/index'

interface Env {
  TENANT_QUOTA: DurableObjectNamespace<FaultyObject>
}

export class FaultyObject extends TenantQuotaObject<Env> {
  #failConcurrency = 0
  #failQuota = 0
  #loseQuota = 0
  #failVoids = 0
  override async concurrency(call: Parameters<TenantQuotaObject['concurrency']>[0]) {
    if (this.#failConcurrency > 0) {
      this.#failConcurrency--
      throw new Error('simulated concurrency failure')
    }
    return super.concurrency(call)
  }
  override async quota(call: Parameters<TenantQuotaObject['quota']>[0]) {
    if (this.#failQuota > 0) {
      this.#failQuota--
      throw new Error('simulated quota failure')
    }
    const r = await super.quota(call)
    if (this.#loseQuota > 0) {
      this.#loseQuota--
      throw new Error('simulated lost answer')
    }
    return r
  }
  override async voidOp(call: Parameters<TenantQuotaObject['voidOp']>[0]) {
    if (this.#failVoids > 0) {
      this.#failVoids--
      throw new Error('simulated void failure')
    }
    return super.voidOp(call)
  }
  fault(kind: 'concurrency' | 'quota' | 'loseQuota' | 'voids', n: number) {
    if (kind === 'concurrency') this.#failConcurrency = n
    if (kind === 'quota') this.#failQuota = n
    if (kind === 'loseQuota') this.#loseQuota = n
    if (kind === 'voids') this.#failVoids = n
  }
  async keys() {
    return [...(await this.ctx.storage.list()).keys()]
  }
}

const errOf = (e: unknown) => {
  const x = e as { name?: string; code?: string; message?: string }
  return { threw: true, name: x?.name, code: x?.code, message: String(x?.message ?? x) }
}
const settle = async <T>(p: Promise<T>) => {
  try {
    return await p
  } catch (e) {
    return errOf(e)
  }
}

type Scenario = (env: Env, arg: any) => Promise<unknown>
const stub = (env: Env, name: string) => env.TENANT_QUOTA.get(env.TENANT_QUOTA.idFromName(name)) as any

export const scenarios: Record<string, Scenario> = {
  // A lease whose release RPC fails once: can the slot be released again?
  async leaseReleaseRetry(env, { tenant }) {
    const limiter = new DurableObjectConcurrencyLimiter({ namespace: env.TENANT_QUOTA })
    const d = await limiter.acquire(tenant, 1)
    await stub(env, tenant).fault('concurrency', 1)
    const first = await settle(d.lease!.release())
    const second = await settle(d.lease!.release())
    const inFlight = await limiter.inFlight(tenant)
    const next = await limiter.acquire(tenant, 1)
    return { first, second, inFlight, nextAllowed: next.allowed }
  },
  async raw(env, { tenant, method, call }) {
    return settle(stub(env, tenant)[method](call))
  },
  async keys(env, { tenant }) {
    return stub(env, tenant).keys()
  },
  async fault(env, { tenant, kind, n }) {
    await stub(env, tenant).fault(kind, n)
    return null
  },
  async many(env, { tenant, method, calls }) {
    const s = stub(env, tenant)
    const out: unknown[] = []
    for (let i = 0; i < calls.length; i += 500) {
      out.push(...(await Promise.all(calls.slice(i, i + 500).map((c: unknown) => settle(s[method](c))))))
    }
    return out.filter((r: any) => !(r?.ok === true)).slice(0, 5)
  },
  async quota(env, { tenant, op, arg, config, options }) {
    const m = new DurableObjectQuotaManager(
      { quotaConfig: async () => config },
      { namespace: env.TENANT_QUOTA, ...(options ?? {}) },
    )
    return settle((m as any)[op](tenant, arg))
  },
  async rate(env, { tenant, op, arg, config, options }) {
    const m = new DurableObjectRateLimiter(
      { rateLimitConfig: async () => config },
      { namespace: env.TENANT_QUOTA, ...(options ?? {}) },
    )
    return settle((m as any)[op ?? 'consume'](tenant, arg))
  },
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { name, arg } = (await request.json()) as { name: string; arg: unknown }
    try {
      return Response.json({ ok: true, value: await scenarios[name]!(env, arg) })
    } catch (e) {
      return Response.json({ ok: false, error: errOf(e) })
    }
  },
}
