import type { Dialect } from './driver'
import * as pg from './pg/schema'
import * as sqlite from './sqlite/schema'

/** The tables of one dialect: tenants and plans, and their audit logs. */
export interface TenantTables {
  tenants: typeof sqlite.tenants | typeof pg.tenants
  auditLog: typeof sqlite.tenantAuditLog | typeof pg.tenantAuditLog
  plans: typeof sqlite.plans | typeof pg.plans
  planAuditLog: typeof sqlite.planAuditLog | typeof pg.planAuditLog
}

const byDialect: Record<Dialect, TenantTables> = {
  sqlite: {
    tenants: sqlite.tenants,
    auditLog: sqlite.tenantAuditLog,
    plans: sqlite.plans,
    planAuditLog: sqlite.planAuditLog,
  },
  pg: { tenants: pg.tenants, auditLog: pg.tenantAuditLog, plans: pg.plans, planAuditLog: pg.planAuditLog },
}

/** The tables the stores query for a dialect. */
export function tablesFor(dialect: Dialect): TenantTables {
  return byDialect[dialect]
}
