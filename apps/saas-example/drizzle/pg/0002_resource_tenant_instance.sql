ALTER TABLE "resources" ADD COLUMN "tenant_created_at" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Existing rows belong to the tenant now under their id; rows of a deleted tenant keep 0 and no
-- tenant sees them. FORCE ROW LEVEL SECURITY applies to the owner too, and no tenant is set
-- here: lifted for this one statement, in this migration's transaction.
ALTER TABLE "resources" NO FORCE ROW LEVEL SECURITY;--> statement-breakpoint
UPDATE "resources" SET "tenant_created_at" = coalesce((SELECT round(extract(epoch from "tenants"."created_at") * 1000)::bigint FROM "tenants" WHERE "tenants"."id" = "resources"."tenant_id"), 0);--> statement-breakpoint
ALTER TABLE "resources" FORCE ROW LEVEL SECURITY;
