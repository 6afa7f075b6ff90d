-- Reverts 0002_subjects_concurrency.sql. Hand-written: drizzle-kit generates only up migrations.
-- Per-subject limits and in-flight caps are gone with their columns.
ALTER TABLE `tenants` DROP COLUMN `max_in_flight`;--> statement-breakpoint
ALTER TABLE `tenants` DROP COLUMN `quota_subjects`;--> statement-breakpoint
ALTER TABLE `plans` DROP COLUMN `max_in_flight`;--> statement-breakpoint
ALTER TABLE `plans` DROP COLUMN `quota_subjects`;
