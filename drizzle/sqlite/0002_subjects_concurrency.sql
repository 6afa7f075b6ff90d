ALTER TABLE `plans` ADD `quota_subjects` text;--> statement-breakpoint
ALTER TABLE `plans` ADD `max_in_flight` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `quota_subjects` text;--> statement-breakpoint
ALTER TABLE `tenants` ADD `max_in_flight` integer;