import { inProcess, streamUsageCases } from '@tenant/fetch/testing'
import { describe, it } from 'vitest'
import { REDIS_URL, useTestRedis } from '../test/helpers/redis-env'
import { RedisQuotaManager } from './quota-manager'

// @tenant/fetch's streamUsage cases (a streamed response settled at its usage event, an aborted one
// at what was sent) with the Redis quota manager, both algorithms.
describe.runIf(REDIS_URL)('streamUsage settlement on RedisQuotaManager', () => {
  const { client: redis, prefix } = useTestRedis('stream-usage')
  for (const algorithm of ['fixed', 'sliding'] as const) {
    describe(algorithm, () => {
      const cases = streamUsageCases(
        (configs, clock) => new RedisQuotaManager(configs, { redis, clock, prefix, algorithm }),
      )
      for (const testCase of cases) it(testCase.name, () => testCase.run(inProcess))
    })
  }
})
