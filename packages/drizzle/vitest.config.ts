import { packageProject } from '../../vitest.shared'

// Real databases (PGlite boots a WASM Postgres, the Postgres suite talks to a server), so hooks and
// tests get more time than unit tests; nothing here sleeps.
export default packageProject('drizzle', { testTimeout: 30_000, hookTimeout: 60_000 })
