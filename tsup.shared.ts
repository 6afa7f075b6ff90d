import { defineConfig, type Options } from 'tsup'

/**
 * The one build config every package uses: ESM + CJS + d.ts, one file per entry,
 * dependencies left external so users' copies of zod, hono and drizzle are the ones used.
 */
export function packageConfig(entry: Record<string, string>, extra: Options = {}) {
  return defineConfig({
    entry,
    format: ['esm', 'cjs'],
    dts: { compilerOptions: { composite: false, customConditions: [] } },
    sourcemap: true,
    clean: true,
    treeshake: true,
    splitting: false,
    target: 'es2022',
    outDir: 'dist',
    ...extra,
  })
}
