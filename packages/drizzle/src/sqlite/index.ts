export { sqliteTenantIdColumn as tenantIdColumn } from '../scoped-columns'
export { migrations } from './migrations'
export * from './schema'
