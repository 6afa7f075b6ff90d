import { readFileSync } from 'node:fs'
import { defineConfig, type Options } from 'tsup'

/**
 * The one build config every package uses: ESM + CJS + d.ts, one file per entry,
 * dependencies left external so users' copies of zod, hono and drizzle are the ones used.
 *
 * A package's secondary entry (such as `@tenant/core/testing`) may import the package by its own
 * name and keep it external, so users get one copy of its classes. The declaration build runs
 * before `dist` exists, so it maps that self-import to the sources.
 */
export function packageConfig(entry: Record<string, string>, extra: Options = {}) {
  const { name } = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string }
  return defineConfig({
    entry,
    format: ['esm', 'cjs'],
    dts: {
      compilerOptions: { composite: false, customConditions: [], paths: { [name]: ['./src/index.ts'] } },
    },
    sourcemap: true,
    clean: true,
    treeshake: true,
    splitting: false,
    target: 'es2022',
    outDir: 'dist',
    ...extra,
  })
}
