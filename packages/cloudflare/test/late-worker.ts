// A Worker for test/late-answers.test.ts: the tenancy chain in front of a tenant's object that
// answers slowly, so the stages' timeouts fire first and the object's answers land after the
// request was answered 503 (and the invocation could end).
import { InMemoryConfigManager } from '@tenant/core'
import { withTenancy } from '@tenant/fetch'
import { DurableObjectConcurrencyLimiter, DurableObjectQuotaManager, TenantQuotaObject } from '../src/index'

interface Env {
  TENANT_QUOTA: DurableObjectNamespace<SlowObject>
}

// How long the object takes to answer an acquire or a consume; 0 once the test is done with it.
let delayMs = 0
// How many slow answers the object has given: the late ones have landed once it counts them.
let slowAnswers = 0

export class SlowObject extends TenantQuotaObject<Env> {
  setDelay(ms: number): void {
    delayMs = ms
  }
  slowAnswers(): number {
    return slowAnswers
  }
  override async concurrency(call: Parameters<TenantQuotaObject['concurrency']>[0]) {
    if (delayMs === 0 || call.op !== 'acquire') return super.concurrency(call)
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    const answer = await super.concurrency(call)
    slowAnswers++
    return answer
  }
  override async quota(call: Parameters<TenantQuotaObject['quota']>[0]) {
    if (delayMs === 0 || call.op !== 'consume') return super.quota(call)
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    const answer = await super.quota(call)
    slowAnswers++
    return answer
  }
}

const configs = new InMemoryConfigManager()
const ready = configs.setTenantConfig({
  id: 'acme',
  concurrency: { maxInFlight: 1 },
  quota: { limits: [{ window: 'day', tokens: 1000 }] },
})

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    await ready
    const url = new URL(request.url)
    const stub = env.TENANT_QUOTA.get(env.TENANT_QUOTA.idFromName('acme'))
    const limiter = new DurableObjectConcurrencyLimiter({ namespace: env.TENANT_QUOTA })
    const quotas = new DurableObjectQuotaManager(configs, { namespace: env.TENANT_QUOTA })
    if (url.pathname === '/delay') {
      await stub.setDelay(Number(url.searchParams.get('ms')))
      return new Response('ok')
    }
    if (url.pathname === '/state') {
      const usage = await quotas.peek('acme')
      return Response.json({
        slowAnswers: await stub.slowAnswers(),
        inFlight: await limiter.inFlight('acme'),
        used: usage.windows[0]!.used,
      })
    }
    const stage = url.pathname === '/concurrency' ? { concurrency: { limiter, timeoutMs: 50 } } : {}
    const quota = url.pathname === '/quota' ? { quota: { manager: quotas, timeoutMs: 50 } } : {}
    const handler = withTenancy(
      async (_request: Request, _env: Env, _ctx: ExecutionContext) => new Response('ok'),
      {
        configManager: configs,
        ...stage,
        ...quota,
      },
    )
    return handler(request, env, ctx)
  },
}
