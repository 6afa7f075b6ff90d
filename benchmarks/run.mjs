// Entry of `pnpm bench`. Benchmarks what users install: the packages' built `dist/` output, rebuilt
// first when a package's sources are newer than its build. BENCH_FROM_SOURCE=1 measures the
// TypeScript sources instead (tsx with the `@tenant/source` condition; tsx keeps function names
// with a helper call per closure, which costs a little on paths that create closures per request).
// The benchmark itself (run.ts) always runs under tsx.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const fromSource = process.env.BENCH_FROM_SOURCE === '1' || process.env.BENCH_FROM_SOURCE === 'true'

/** Newest modification time of the files under `dir` that `keep` accepts. */
function newest(dir, keep) {
  let time = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) time = Math.max(time, newest(path, keep))
    else if (keep(entry.name)) time = Math.max(time, statSync(path).mtimeMs)
  }
  return time
}

function stalePackages() {
  const stale = []
  for (const name of readdirSync(join(root, 'packages'))) {
    const dir = join(root, 'packages', name)
    const built = join(dir, 'dist', 'index.js')
    const source = Math.max(
      newest(join(dir, 'src'), (f) => f.endsWith('.ts') && !/\.test(-d)?\.ts$/.test(f)),
      statSync(join(dir, 'package.json')).mtimeMs,
    )
    if (!existsSync(built) || statSync(built).mtimeMs < source) stale.push(`@tenant/${name}`)
  }
  return stale
}

if (!fromSource) {
  const stale = stalePackages()
  if (stale.length > 0) {
    console.log(`building ${stale.join(', ')} (sources newer than dist/)`)
    const build = spawnSync('pnpm', [...stale.flatMap((name) => ['--filter', name]), 'build'], {
      cwd: root,
      stdio: 'inherit',
    })
    if (build.status !== 0) process.exit(build.status ?? 1)
  }
}

const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    ...(fromSource ? ['--conditions=@tenant/source'] : []),
    fileURLToPath(new URL('./run.ts', import.meta.url)),
  ],
  { cwd: root, stdio: 'inherit', env: process.env },
)
process.exit(result.status ?? 1)
