import { packageConfig } from '../../tsup.shared'

// `@tenant/fetch/testing` imports `@tenant/fetch` by name and keeps it external, so the portable
// suite runs against the user's copy of the middleware, never a bundled second one.
export default packageConfig(
  { index: 'src/index.ts', testing: 'testing/index.ts' },
  { external: ['@tenant/fetch'] },
)
