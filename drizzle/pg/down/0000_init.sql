-- Reverts 0000_init.sql. Hand-written: drizzle-kit generates only up migrations.
-- Dropping a table drops its indexes, constraints and identity sequence.
DROP TABLE "tenants";--> statement-breakpoint
DROP TABLE "tenant_audit_log";
