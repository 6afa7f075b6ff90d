import { InMemoryQuotaManager, SlidingWindowQuotaManager } from '../src/index'
import { testQuotaManager } from './quota-manager'

testQuotaManager(
  'InMemoryQuotaManager',
  ({ provider, clock }) => new InMemoryQuotaManager(provider, { clock }),
  {
    algorithm: 'fixed',
  },
)

testQuotaManager(
  'SlidingWindowQuotaManager (default precision)',
  ({ provider, clock }) => new SlidingWindowQuotaManager(provider, { clock }),
  { algorithm: 'sliding' },
)

for (const precision of [1, 60, 1000]) {
  testQuotaManager(
    `SlidingWindowQuotaManager (precision ${precision})`,
    ({ provider, clock }) => new SlidingWindowQuotaManager(provider, { clock, precision }),
    { algorithm: 'sliding' },
  )
}
