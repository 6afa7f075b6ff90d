CREATE TABLE "plan_audit_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "plan_audit_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"plan_id" text NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"at" timestamp (3) with time zone NOT NULL,
	"request_id" text
);
--> statement-breakpoint
CREATE TABLE "plans" (
	"id" varchar(255) COLLATE "C" PRIMARY KEY NOT NULL,
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
	CONSTRAINT "plans_id_check" CHECK ("plans"."id" ~ '^[A-Za-z0-9._-]{1,255}$'),
	CONSTRAINT "plans_quota_check" CHECK ("plans"."quota_requests_per_minute" >= 0 and "plans"."quota_tokens_per_minute" >= 0 and "plans"."quota_requests_per_hour" >= 0 and "plans"."quota_tokens_per_hour" >= 0 and "plans"."quota_requests_per_day" >= 0 and "plans"."quota_tokens_per_day" >= 0 and "plans"."quota_requests_per_month" >= 0 and "plans"."quota_tokens_per_month" >= 0),
	CONSTRAINT "plans_rate_limit_check" CHECK (("plans"."rate_limit_requests_per_second" is null and "plans"."rate_limit_burst" is null) or ("plans"."rate_limit_requests_per_second" is not null and "plans"."rate_limit_burst" is not null and "plans"."rate_limit_requests_per_second" > 0 and "plans"."rate_limit_burst" >= 1))
);
--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "plan" varchar(255) COLLATE "C";--> statement-breakpoint
CREATE INDEX "plan_audit_log_plan_id_idx" ON "plan_audit_log" USING btree ("plan_id","id" DESC NULLS LAST);--> statement-breakpoint
-- Edited after drizzle-kit: it names the schema ("public"."plans"); migrate(db) creates the tables in
-- the first schema of the search_path, so the reference must resolve there too.
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_plan_plans_id_fk" FOREIGN KEY ("plan") REFERENCES "plans"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tenants_plan_idx" ON "tenants" USING btree ("plan");