import { ManualClock } from '@tenant/core'
import { testAuditedTenantStore, testAuditLog, testConfigManager } from '@tenant/core/testing'
import { beforeEach, describe } from 'vitest'
import { describeEachDatabase, withD1 } from '../test/databases'
import { DrizzleAuditLog } from './audit-log'
import { DrizzleConfigManager } from './config-manager'

// Core's shared suites, unchanged, on every database: the config manager with and without its
// cache, the audit log, and the transactional audited store.
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
    })
  },
  { kinds: withD1 },
)
