import { fileURLToPath } from 'node:url'
import { defineProject, type ViteUserConfig } from 'vitest/config'

const fastCheckSetup = fileURLToPath(new URL('./vitest.fast-check.ts', import.meta.url))

/**
 * The per-package Vitest project: resolves our packages to their TypeScript sources through
 * the `@tenant/source` export condition, so tests never depend on a previous build. Every project
 * sets fast-check's seed policy first (see vitest.fast-check.ts).
 */
export function packageProject(name: string, test: NonNullable<ViteUserConfig['test']> = {}) {
  return defineProject({
    resolve: { conditions: ['@tenant/source', 'module', 'node', 'import', 'default'] },
    ssr: { resolve: { conditions: ['@tenant/source', 'module', 'node', 'import', 'default'] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'testing/**/*.test.ts', 'test/**/*.test.ts'],
      ...test,
      setupFiles: [fastCheckSetup, ...[test.setupFiles ?? []].flat()],
    },
  })
}
