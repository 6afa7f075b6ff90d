CREATE TABLE `plan_audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`plan_id` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`before` text,
	`after` text,
	`at` integer NOT NULL,
	`request_id` text
);
--> statement-breakpoint
CREATE INDEX `plan_audit_log_plan_id_idx` ON `plan_audit_log` (`plan_id`,"id" desc);--> statement-breakpoint
CREATE TABLE `plans` (
	`id` text PRIMARY KEY NOT NULL,
	`quota_requests_per_minute` integer,
	`quota_tokens_per_minute` integer,
	`quota_requests_per_hour` integer,
	`quota_tokens_per_hour` integer,
	`quota_requests_per_day` integer,
	`quota_tokens_per_day` integer,
	`quota_requests_per_month` integer,
	`quota_tokens_per_month` integer,
	`rate_limit_requests_per_second` real,
	`rate_limit_burst` integer,
	`allowed_models` text DEFAULT '[]' NOT NULL,
	`allowed_tools` text DEFAULT '[]' NOT NULL,
	`allowed_methods` text DEFAULT '[]' NOT NULL,
	`allowed_paths` text DEFAULT '[]' NOT NULL,
	`metadata` text DEFAULT '{}' NOT NULL,
	`revision` integer DEFAULT 1 NOT NULL,
	`created_at` integer DEFAULT (cast((julianday('now') - 2440587.5) * 86400000 as integer)) NOT NULL,
	`updated_at` integer DEFAULT (cast((julianday('now') - 2440587.5) * 86400000 as integer)) NOT NULL,
	CONSTRAINT "plans_id_check" CHECK(length("plans"."id") between 1 and 255 and "plans"."id" not glob '*[^A-Za-z0-9._-]*'),
	CONSTRAINT "plans_quota_check" CHECK("plans"."quota_requests_per_minute" >= 0 and "plans"."quota_tokens_per_minute" >= 0 and "plans"."quota_requests_per_hour" >= 0 and "plans"."quota_tokens_per_hour" >= 0 and "plans"."quota_requests_per_day" >= 0 and "plans"."quota_tokens_per_day" >= 0 and "plans"."quota_requests_per_month" >= 0 and "plans"."quota_tokens_per_month" >= 0),
	CONSTRAINT "plans_rate_limit_check" CHECK(("plans"."rate_limit_requests_per_second" is null and "plans"."rate_limit_burst" is null) or ("plans"."rate_limit_requests_per_second" is not null and "plans"."rate_limit_burst" is not null and "plans"."rate_limit_requests_per_second" > 0 and "plans"."rate_limit_burst" >= 1))
);
--> statement-breakpoint
ALTER TABLE `tenants` ADD `plan` text REFERENCES plans(id);--> statement-breakpoint
CREATE INDEX `tenants_plan_idx` ON `tenants` (`plan`);