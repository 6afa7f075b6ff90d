-- saas-example: the complete PostgreSQL schema as plain SQL, for readers and for tools that do not
-- run migrations. The app itself never reads this file: it applies the same DDL on start with
-- @tenant/drizzle's migrate(db) (tenants, plans and their audit logs) and its own drizzle/pg migrations
-- (resources and its row-level security). test/schema-sql.test.ts checks that both build the same
-- database. SQLite / libSQL / D1 have the same tables in drizzle/d1/*.sql.
--
-- Run it as the role that will own the tables (not the application's role):
--   psql "$MIGRATION_DATABASE_URL" -f schema.sql
-- then let the application's role (no SUPERUSER, no BYPASSRLS) use them:
--   GRANT USAGE ON SCHEMA public TO app;
--   GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, plans, resources TO app;
--   GRANT SELECT, INSERT ON tenant_audit_log, plan_audit_log TO app;

-- Toolkit: tenant configurations and the admin audit log (@tenant/drizzle, drizzle/pg/0000_init.sql).
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

CREATE INDEX "tenant_audit_log_tenant_id_idx" ON "tenant_audit_log" USING btree ("tenant_id","id" DESC NULLS LAST);
CREATE INDEX "tenant_audit_log_at_idx" ON "tenant_audit_log" USING btree ("at");
CREATE INDEX "tenants_status_id_idx" ON "tenants" USING btree ("status","id");

-- Toolkit: plans, the tenants' plan column and the plans' audit log (@tenant/drizzle, drizzle/pg/0001_plans.sql).
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
ALTER TABLE "tenants" ADD COLUMN "plan" varchar(255) COLLATE "C";
CREATE INDEX "plan_audit_log_plan_id_idx" ON "plan_audit_log" USING btree ("plan_id","id" DESC NULLS LAST);
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_plan_plans_id_fk" FOREIGN KEY ("plan") REFERENCES "plans"("id") ON DELETE no action ON UPDATE no action;
CREATE INDEX "tenants_plan_idx" ON "tenants" USING btree ("plan");

-- Toolkit: per-subject quota limits and in-flight caps (@tenant/drizzle, drizzle/pg/0002_subjects_concurrency.sql).
ALTER TABLE "plans" ADD COLUMN "quota_subjects" jsonb;
ALTER TABLE "plans" ADD COLUMN "max_in_flight" bigint;
ALTER TABLE "tenants" ADD COLUMN "quota_subjects" jsonb;
ALTER TABLE "tenants" ADD COLUMN "max_in_flight" bigint;

-- The app: resources, one row per resource, owned by one tenant (drizzle/pg/0000_resources.sql).
CREATE TABLE "resources" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"name" text NOT NULL,
	"data" json NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	"updated_at" timestamp (3) with time zone NOT NULL,
	-- Which tenant of the id wrote the row: its createdAt in ms (ids are reused once deleted).
	"tenant_created_at" bigint DEFAULT 0 NOT NULL
);

ALTER TABLE "resources" ENABLE ROW LEVEL SECURITY;
CREATE INDEX "resources_tenant_id_id_idx" ON "resources" USING btree ("tenant_id","id");
CREATE POLICY "tenant_isolation" ON "resources" AS PERMISSIVE FOR ALL TO public USING ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')) WITH CHECK ("tenant_id" = NULLIF(current_setting('app.tenant_id', true), ''));

-- FORCE: the table owner is filtered too (drizzle/pg/0001_force_rls.sql).
ALTER TABLE "resources" FORCE ROW LEVEL SECURITY;
