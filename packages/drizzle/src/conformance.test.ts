import { ManualClock } from '@tenant/core'
import {
  testAuditedPlanStore,
  testAuditedTenantStore,
  testAuditLog,
  testConfigManager,
  testPlanStore,
} from '@tenant/core/testing'
import { beforeEach, describe } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'
import { DrizzlePlanStore } from './plan-store'

// Core's shared suites, unchanged, on every database: the config manager and the plan store with
// and without their caches, the audit log, and the transactional audited stores.
describeEachDatabase(
  'conformance',
  (database) => {
    testConfigManager(
      'DrizzleConfigManager (cached)',
      ({ clock }) => new DrizzleConfigManager(database.current.db, { clock }),
    )
    testConfigManager(
      'DrizzleConfigManager (no cache)',
      ({ clock }) => new DrizzleConfigManager(database.current.db, { clock, cache: false }),
    )
    testPlanStore('DrizzlePlanStore (cached)', ({ clock }) => ({
      plans: new DrizzlePlanStore(database.current.db, { clock }),
      tenants: new DrizzleConfigManager(database.current.db, { clock }),
    }))
    testPlanStore('DrizzlePlanStore (no cache)', ({ clock }) => ({
      plans: new DrizzlePlanStore(database.current.db, { clock, cache: false }),
      tenants: new DrizzleConfigManager(database.current.db, { clock, cache: false }),
    }))

    describe('fresh tables', () => {
      beforeEach(() => database.current.reset())
      testAuditLog('DrizzleAuditLog', () => new DrizzleAuditLog(database.current.db))
      testAuditedTenantStore('DrizzleConfigManager', () => {
        const clock = new ManualClock(Date.UTC(2026, 0, 1))
        return {
          store: new DrizzleConfigManager(database.current.db, { clock }),
          auditLog: new DrizzleAuditLog(database.current.db),
          clock,
        }
      })
      testAuditedPlanStore('DrizzlePlanStore', () => {
        const clock = new ManualClock(Date.UTC(2026, 0, 1))
        return {
          store: new DrizzlePlanStore(database.current.db, { clock }),
          tenants: new DrizzleConfigManager(database.current.db, { clock }),
          auditLog: new DrizzleAuditLog(database.current.db),
          clock,
        }
      })
    })
  },
  { kinds: withD1 },
)
