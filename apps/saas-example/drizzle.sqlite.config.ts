import { defineConfig } from 'drizzle-kit'

// `pnpm generate` writes the app's SQLite/libSQL/D1 migrations (the resources table) to
// drizzle/sqlite; they run after the toolkit's own `migrate(db)`.
export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/sqlite-schema.ts',
  out: './drizzle/sqlite',
})
