import { cpSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { packageConfig } from '../../tsup.shared'

// Absolute paths, so that the build works from any working directory (the package test runs it).
const here = dirname(fileURLToPath(import.meta.url))

export default packageConfig(
  {
    index: join(here, 'src/index.ts'),
    'sqlite/index': join(here, 'src/sqlite/index.ts'),
    'pg/index': join(here, 'src/pg/index.ts'),
  },
  {
    // The SQL also ships as files (with drizzle-kit's journal and the down scripts) for
    // `wrangler d1 migrations apply` and `drizzle-kit migrate`; `migrate(db)` uses the copy
    // bundled into the code.
    async onSuccess() {
      rmSync(join(here, 'migrations'), { recursive: true, force: true })
      for (const dialect of ['sqlite', 'pg']) {
        cpSync(join(here, '..', '..', 'drizzle', dialect), join(here, 'migrations', dialect), {
          recursive: true,
        })
      }
    },
  },
)
