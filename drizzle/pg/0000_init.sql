CREATE TABLE "tenant_audit_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "tenant_audit_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tenant_id" text NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"at" timestamp (3) with time zone NOT NULL,
	"request_id" text
);
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" varchar(255) COLLATE "C" PRIMARY KEY NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"quota_requests_per_minute" bigint,
	"quota_tokens_per_minute" bigint,
	"quota_requests_per_hour" bigint,
	"quota_tokens_per_hour" bigint,
	"quota_requests_per_day" bigint,
	"quota_tokens_per_day" bigint,
	"quota_requests_per_month" bigint,
	"quota_tokens_per_month" bigint,
	"rate_limit_requests_per_second" double precision,
	"rate_limit_burst" bigint,
	"allowed_models" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"allowed_tools" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"allowed_methods" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"allowed_paths" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"revision" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenants_id_check" CHECK ("tenants"."id" ~ '^[A-Za-z0-9._-]{1,255}$'),
	CONSTRAINT "tenants_status_check" CHECK ("tenants"."status" in ('active', 'suspended')),
	CONSTRAINT "tenants_quota_check" CHECK ("tenants"."quota_requests_per_minute" >= 0 and "tenants"."quota_tokens_per_minute" >= 0 and "tenants"."quota_requests_per_hour" >= 0 and "tenants"."quota_tokens_per_hour" >= 0 and "tenants"."quota_requests_per_day" >= 0 and "tenants"."quota_tokens_per_day" >= 0 and "tenants"."quota_requests_per_month" >= 0 and "tenants"."quota_tokens_per_month" >= 0),
	CONSTRAINT "tenants_rate_limit_check" CHECK (("tenants"."rate_limit_requests_per_second" is null and "tenants"."rate_limit_burst" is null) or ("tenants"."rate_limit_requests_per_second" is not null and "tenants"."rate_limit_burst" is not null and "tenants"."rate_limit_requests_per_second" > 0 and "tenants"."rate_limit_burst" >= 1))
);
--> statement-breakpoint
CREATE INDEX "tenant_audit_log_tenant_id_idx" ON "tenant_audit_log" USING btree ("tenant_id","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tenant_audit_log_at_idx" ON "tenant_audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "tenants_status_id_idx" ON "tenants" USING btree ("status","id");