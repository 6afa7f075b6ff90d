-- Reverts 0001_plans.sql. Hand-written: drizzle-kit generates only up migrations.
-- The tenants' plan column goes first (its index with it, then the column and its reference), so
-- that nothing references plans when it is dropped. Tenants keep their own configs; what they
-- inherited from their plan is gone with it.
DROP INDEX `tenants_plan_idx`;--> statement-breakpoint
ALTER TABLE `tenants` DROP COLUMN `plan`;--> statement-breakpoint
DROP TABLE `plans`;--> statement-breakpoint
DROP TABLE `plan_audit_log`;
