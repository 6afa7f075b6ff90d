import { defineConfig } from 'drizzle-kit'

// `pnpm generate` writes the app's PostgreSQL migrations (the resources table and its
// row-level-security policy) to drizzle/pg; they run after the toolkit's own `migrate(db)`.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/pg-schema.ts',
  out: './drizzle/pg',
  entities: { roles: false },
})
