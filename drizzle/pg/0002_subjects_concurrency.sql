ALTER TABLE "plans" ADD COLUMN "quota_subjects" jsonb;--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "max_in_flight" bigint;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "quota_subjects" jsonb;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "max_in_flight" bigint;