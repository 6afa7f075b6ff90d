-- Reverts 0001_plans.sql. Hand-written: drizzle-kit generates only up migrations.
-- Dropping the tenants' plan column drops its index and foreign key, so that nothing references
-- plans when it is dropped. Tenants keep their own configs; what they inherited is gone.
ALTER TABLE "tenants" DROP COLUMN "plan";--> statement-breakpoint
DROP TABLE "plans";--> statement-breakpoint
DROP TABLE "plan_audit_log";
