CREATE TABLE `tenant_audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`tenant_id` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`before` text,
	`after` text,
	`at` integer NOT NULL,
	`request_id` text
);
--> statement-breakpoint
CREATE INDEX `tenant_audit_log_tenant_id_idx` ON `tenant_audit_log` (`tenant_id`,"id" desc);--> statement-breakpoint
CREATE INDEX `tenant_audit_log_at_idx` ON `tenant_audit_log` (`at`);--> statement-breakpoint
CREATE TABLE `tenants` (
	`id` text PRIMARY KEY NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
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
	CONSTRAINT "tenants_id_check" CHECK(length("tenants"."id") between 1 and 255 and "tenants"."id" not glob '*[^A-Za-z0-9._-]*'),
	CONSTRAINT "tenants_status_check" CHECK("tenants"."status" in ('active', 'suspended')),
	CONSTRAINT "tenants_quota_check" CHECK("tenants"."quota_requests_per_minute" >= 0 and "tenants"."quota_tokens_per_minute" >= 0 and "tenants"."quota_requests_per_hour" >= 0 and "tenants"."quota_tokens_per_hour" >= 0 and "tenants"."quota_requests_per_day" >= 0 and "tenants"."quota_tokens_per_day" >= 0 and "tenants"."quota_requests_per_month" >= 0 and "tenants"."quota_tokens_per_month" >= 0),
	CONSTRAINT "tenants_rate_limit_check" CHECK(("tenants"."rate_limit_requests_per_second" is null and "tenants"."rate_limit_burst" is null) or ("tenants"."rate_limit_requests_per_second" is not null and "tenants"."rate_limit_burst" is not null and "tenants"."rate_limit_requests_per_second" > 0 and "tenants"."rate_limit_burst" >= 1))
);
--> statement-breakpoint
CREATE INDEX `tenants_status_id_idx` ON `tenants` (`status`,`id`);