import { packageConfig } from '../../tsup.shared'

// `@tenant/core/testing` imports `@tenant/core` by name and keeps it external, so the suites use the
// user's copy of core (one TenantError class, one InMemoryConfigManager), never a bundled second copy.
// The declaration build resolves that self-import to the sources, since dist does not exist yet.
export default packageConfig(
  { index: 'src/index.ts', testing: 'testing/index.ts' },
  {
    external: ['@tenant/core'],
    dts: {
      compilerOptions: { composite: false, customConditions: [], paths: { '@tenant/core': ['./src/index.ts'] } },
    },
  },
)
