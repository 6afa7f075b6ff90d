import { defineConfig } from 'drizzle-kit'

// `pnpm drizzle-kit generate --config drizzle.pg.config.ts` writes the PostgreSQL migrations
// (postgres.js, node-postgres, PGlite) to the repository's top-level drizzle/pg folder.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/pg/schema.ts',
  out: '../../drizzle/pg',
})
