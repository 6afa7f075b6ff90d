// The scenario on Node (tsx, the TypeScript sources): libSQL with in-process limits, and
// PostgreSQL (row-level security, non-owner role) with Redis limits.

import { describeScenario } from './scenario'
import { describeWithBackends, libsqlTarget, postgresRedisTarget } from './targets'

describeScenario(libsqlTarget('node'))
describeWithBackends(postgresRedisTarget('node'))
