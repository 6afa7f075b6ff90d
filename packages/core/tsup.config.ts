import { packageConfig } from '../../tsup.shared'

// `@tenant/core/testing` imports `@tenant/core` by name and keeps it external, so the suites use the
// user's copy of core (one TenantError class, one InMemoryConfigManager), never a bundled second copy.
export default packageConfig(
  { index: 'src/index.ts', testing: 'testing/index.ts' },
  { external: ['@tenant/core'] },
)
