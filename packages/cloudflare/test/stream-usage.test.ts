// @tenant/fetch's streamUsage cases (a streamed response settled at its usage event, an aborted one
// at what was sent under ctx.waitUntil) with DurableObjectQuotaManager: the settlement's adjust
// crosses into workerd and the tenant's object.
import { inProcess, streamUsageCases } from '@tenant/fetch/testing'
import { describe, it } from 'vitest'
import { useWorkerd } from './workerd'

const workerd = useWorkerd()

for (const algorithm of ['fixed', 'sliding'] as const) {
  describe(`streamUsage settlement on DurableObjectQuotaManager (${algorithm})`, () => {
    const cases = streamUsageCases((configs, clock) => workerd().quotaManager(configs, { clock, algorithm }))
    for (const testCase of cases) it(testCase.name, () => testCase.run(inProcess), 30_000)
  })
}
