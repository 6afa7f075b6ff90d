ALTER TABLE `resources` ADD `tenant_created_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Existing rows belong to the tenant now under their id; rows of a deleted tenant keep 0 and no
-- tenant sees them.
UPDATE `resources` SET `tenant_created_at` = coalesce((SELECT `created_at` FROM `tenants` WHERE `tenants`.`id` = `resources`.`tenant_id`), 0);
