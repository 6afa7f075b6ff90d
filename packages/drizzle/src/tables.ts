import type { Dialect } from './driver'
import * as pg from './pg/schema'
import * as sqlite from './sqlite/schema'

/** The `tenants` and `tenant_audit_log` tables of one dialect. */
export interface TenantTables {
  tenants: typeof sqlite.tenants | typeof pg.tenants
  auditLog: typeof sqlite.tenantAuditLog | typeof pg.tenantAuditLog
}

const byDialect: Record<Dialect, TenantTables> = {
  sqlite: { tenants: sqlite.tenants, auditLog: sqlite.tenantAuditLog },
  pg: { tenants: pg.tenants, auditLog: pg.tenantAuditLog },
}

/** The tables the stores query for a dialect. */
export function tablesFor(dialect: Dialect): TenantTables {
  return byDialect[dialect]
}
