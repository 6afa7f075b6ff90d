import { packageProject } from '../../vitest.shared'

// The e2e suites start real server processes (tsx, bun, wrangler): their hooks get time for a cold
// start on a busy machine; the tests themselves are plain HTTP calls.
export default packageProject('saas-example', {
  hookTimeout: 120_000,
  testTimeout: 30_000,
})
