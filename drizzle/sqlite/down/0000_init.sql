-- Reverts 0000_init.sql. Hand-written: drizzle-kit generates only up migrations.
-- Dropping a table drops its indexes and constraints.
DROP TABLE `tenants`;--> statement-breakpoint
DROP TABLE `tenant_audit_log`;
