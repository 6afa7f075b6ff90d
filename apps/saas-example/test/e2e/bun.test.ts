// The scenario on Bun (Bun.serve, the TypeScript sources): libSQL with in-process limits, and
// PostgreSQL with Redis limits.
import { describeScenario } from './scenario'
import { describeWithBackends, libsqlTarget, postgresRedisTarget } from './targets'

describeScenario(libsqlTarget('bun'))
describeWithBackends(postgresRedisTarget('bun'))
