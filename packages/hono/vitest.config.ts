import { packageProject } from '../../vitest.shared'

export default packageProject('hono', {
  // Type tests (*.test-d.ts) for TenantEnv run with tsc alongside the runtime tests.
  typecheck: { enabled: true, include: ['src/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
})
