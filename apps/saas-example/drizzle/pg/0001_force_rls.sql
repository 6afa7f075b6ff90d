-- Custom migration: drizzle-kit emits ENABLE ROW LEVEL SECURITY for a table with policies, but not
-- FORCE. Without FORCE the table owner is not filtered; with it, only a superuser or a BYPASSRLS
-- role still sees every tenant's rows (the app checks its own role at start with checkTenantRls).
ALTER TABLE "resources" FORCE ROW LEVEL SECURITY;
