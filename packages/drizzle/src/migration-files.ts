// Node-only: reads a drizzle-kit migrations folder. Used by scripts/embed-migrations.ts and by
// the test that keeps the embedded copies in step with the folder; never bundled into the package.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ShippedMigration } from './migrate'

const BREAKPOINT = '--> statement-breakpoint'

interface Journal {
  entries: { idx: number; tag: string; breakpoints: boolean }[]
}

/** Splits a migration file into statements the way drizzle-kit's own migrator does. */
export function splitStatements(text: string): string[] {
  return text
    .split(BREAKPOINT)
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
}

/**
 * Reads `folder` (drizzle-kit's output: `meta/_journal.json`, `<tag>.sql`) and the hand-written
 * `down/<tag>.sql` of every migration. A migration without a down script is an error: every
 * shipped migration must be reversible.
 */
export function readMigrationFolder(folder: string): ShippedMigration[] {
  const journal = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as Journal
  return [...journal.entries]
    .sort((a, b) => a.idx - b.idx)
    .map(({ tag }) => {
      const up = readFileSync(join(folder, `${tag}.sql`), 'utf8')
      const downPath = join(folder, 'down', `${tag}.sql`)
      if (!existsSync(downPath))
        throw new Error(`migration ${tag} in ${folder} has no down script at ${downPath}`)
      return {
        tag,
        hash: createHash('sha256').update(up).digest('hex'),
        up: splitStatements(up),
        down: splitStatements(readFileSync(downPath, 'utf8')),
      }
    })
}
