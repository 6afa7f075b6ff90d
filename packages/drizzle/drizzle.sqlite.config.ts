import { defineConfig } from 'drizzle-kit'

// `pnpm drizzle-kit generate --config drizzle.sqlite.config.ts` writes the SQLite-family migrations
// (libSQL, D1, bun:sqlite) to the repository's top-level drizzle/sqlite folder.
export default defineConfig({
  dialect: 'sqlite',
  schema: './src/sqlite/schema.ts',
  out: '../../drizzle/sqlite',
})
