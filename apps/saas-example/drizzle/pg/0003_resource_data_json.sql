-- json, not jsonb: jsonb sorts object keys, and a resource's data must come back as it was sent.
ALTER TABLE "resources" ALTER COLUMN "data" SET DATA TYPE json USING "data"::json;
