import { defineConfig } from 'vitest/config'

// One project per package: each folder's own vitest.config.ts says how its tests run
// (node pool for most, extra setup for the database, Redis and runtime suites).
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    // CI also writes a JSON report, from which .ci/run prints the closing "N passed, N failed" line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.vitest-results.json' },
    coverage: {
      provider: 'v8',
      include: ['packages/*/src/**/*.ts'],
      exclude: ['**/*.test.ts', '**/*.test-d.ts', '**/index.ts'],
      reporter: ['text-summary', 'json-summary'],
    },
  },
})
