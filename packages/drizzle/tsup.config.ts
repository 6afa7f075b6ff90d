import { cpSync, rmSync } from 'node:fs'
import { packageConfig } from '../../tsup.shared'

export default packageConfig(
  {
    index: 'src/index.ts',
    'sqlite/index': 'src/sqlite/index.ts',
    'pg/index': 'src/pg/index.ts',
  },
  {
    // The SQL also ships as files (with drizzle-kit's journal and the down scripts) for
    // `wrangler d1 migrations apply` and `drizzle-kit migrate`; `migrate(db)` uses the copy
    // bundled into the code.
    async onSuccess() {
      rmSync('migrations', { recursive: true, force: true })
      for (const dialect of ['sqlite', 'pg']) {
        cpSync(`../../drizzle/${dialect}`, `migrations/${dialect}`, { recursive: true })
      }
    },
  },
)
