import { execFile } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { build, type Options } from 'tsup'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const packageDir = join(import.meta.dirname, '..')
const coreDir = join(packageDir, '..', 'core')

// What a user gets from npm: the built package (not the TypeScript sources the other tests use),
// installed in a folder outside the repository, imported both as ESM and as CommonJS. `migrate`
// must find its SQL there, and the SQL files must ship for wrangler / drizzle-kit users.
describe('the built, installed package', () => {
  let app: string

  beforeAll(async () => {
    app = mkdtempSync(join(tmpdir(), 'tenant-drizzle-install-'))
    const modules = join(app, 'node_modules')
    const install = async (dir: string, name: string) => {
      // Loaded at run time, so that the packages' build files stay out of this project's type check.
      const config: Options | Options[] = (await import(pathToFileURL(join(dir, 'tsup.config.ts')).href))
        .default
      const target = join(modules, name)
      mkdirSync(target, { recursive: true })
      cpSync(join(dir, 'package.json'), join(target, 'package.json'))
      // tsup keeps a package's dependencies external by reading package.json in the working
      // directory, which here is the repository's: name them, as npm users get them, so that
      // @tenant/core is imported, not bundled (and no build of it is needed first).
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<
        string,
        Record<string, string> | undefined
      >
      const external = [...Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }), name].map(
        (dependency) => new RegExp(`^${dependency.replace(/[/.]/g, '\\$&')}(/|$)`),
      )
      // The package's own build configuration (entries made absolute, as the test does not run in
      // the package's folder), with declarations left to `pnpm build`.
      for (const options of [config].flat()) {
        const entry = Object.fromEntries(
          Object.entries(options.entry as Record<string, string>).map(([k, v]) => [k, resolve(dir, v)]),
        )
        await build({
          ...options,
          entry,
          tsconfig: join(dir, 'tsconfig.json'),
          outDir: join(target, 'dist'),
          external,
          dts: false,
          // Rollup's tree-shaking pass is most of the build time and changes nothing that matters here.
          treeshake: false,
          sourcemap: false,
          silent: true,
        })
      }
      return target
    }
    await install(coreDir, '@tenant/core')
    const drizzle = await install(packageDir, '@tenant/drizzle')
    // The build's onSuccess step refreshed packages/drizzle/migrations; ship it as npm would.
    cpSync(join(packageDir, 'migrations'), join(drizzle, 'migrations'), { recursive: true })
    for (const dependency of ['drizzle-orm', 'lru-cache', 'node-sql-parser', 'zod', '@libsql/client']) {
      const target = join(modules, dependency)
      mkdirSync(dirname(target), { recursive: true })
      symlinkSync(realpathSync(join(packageDir, 'node_modules', dependency)), target, 'dir')
    }
  }, 120_000)

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true })
  })

  const script = (load: (name: string) => string) => `
    const { createClient } = ${load('@libsql/client')}
    const { drizzle } = ${load('drizzle-orm/libsql')}
    const { migrate, rollback, DrizzleConfigManager, DrizzleAuditLog, DrizzlePlanStore } = ${load('@tenant/drizzle')}
    const sqlite = ${load('@tenant/drizzle/sqlite')}
    const pg = ${load('@tenant/drizzle/pg')}
    const db = drizzle(createClient({ url: ':memory:' }))
    const applied = await migrate(db)
    const configs = new DrizzleConfigManager(db)
    await new DrizzlePlanStore(db).setPlan({ id: 'pro' })
    await configs.applyChange({ tenantId: 'acme', action: 'tenant.create', actor: 'ci', apply: () => ({ id: 'acme', plan: 'pro' }) })
    const stored = await configs.getTenantConfig('acme')
    const audit = await new DrizzleAuditLog(db).list('acme')
    const reverted = await rollback(db, { steps: 'all' })
    console.log(JSON.stringify({
      applied, reverted, id: stored.id, plan: stored.plan, audited: audit.items.length,
      sqlite: sqlite.migrations.map((m) => m.tag), pg: pg.migrations.map((m) => m.tag),
      tables: [typeof sqlite.tenants, typeof pg.tenantAuditLog, typeof sqlite.plans, typeof pg.planAuditLog],
    }))
  `
  const expected = {
    applied: ['0000_init', '0001_plans', '0002_subjects_concurrency'],
    reverted: ['0002_subjects_concurrency', '0001_plans', '0000_init'],
    id: 'acme',
    plan: 'pro',
    audited: 1,
    sqlite: ['0000_init', '0001_plans', '0002_subjects_concurrency'],
    pg: ['0000_init', '0001_plans', '0002_subjects_concurrency'],
    tables: ['object', 'object', 'object', 'object'],
  }

  it('works as ESM from outside the repository', async () => {
    const file = join(app, 'check.mjs')
    writeFileSync(
      file,
      script((name) => `await import(${JSON.stringify(name)})`),
    )
    const { stdout } = await run(process.execPath, [file], { cwd: app })
    expect(JSON.parse(stdout)).toEqual(expected)
  })

  it('works as CommonJS from outside the repository', async () => {
    const file = join(app, 'check.cjs')
    writeFileSync(file, `(async () => {${script((name) => `require(${JSON.stringify(name)})`)}})()`)
    const { stdout } = await run(process.execPath, [file], { cwd: app })
    expect(JSON.parse(stdout)).toEqual(expected)
  })

  it('ships the SQL files, with drizzle-kit journals and down scripts', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: packageDir,
    })
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path)
    for (const dialect of ['sqlite', 'pg']) {
      for (const file of [
        '0000_init.sql',
        'down/0000_init.sql',
        '0001_plans.sql',
        'down/0001_plans.sql',
        'meta/_journal.json',
        'meta/0000_snapshot.json',
        'meta/0001_snapshot.json',
      ]) {
        expect(files).toContain(`migrations/${dialect}/${file}`)
        expect(existsSync(join(packageDir, 'migrations', dialect, file))).toBe(true)
      }
    }
  })
})
