import { packageProject } from '../../vitest.shared'

export default packageProject('hono', {
  // Type tests (*.test-d.ts) run with tsc alongside the runtime tests, on a tsconfig without
  // project references: the sibling packages are read from source (the @tenant/source condition),
  // so the type tests need no earlier `tsc -b`.
  typecheck: { enabled: true, include: ['src/**/*.test-d.ts'], tsconfig: './tsconfig.typecheck.json' },
})
