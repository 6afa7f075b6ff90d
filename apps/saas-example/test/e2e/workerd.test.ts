// The scenario on workerd through `wrangler dev --local`: D1 for configs and resources, the
// tenants' Durable Objects for quotas and rate limits.
import { describeScenario } from './scenario'
import { workerdTarget } from './targets'

describeScenario(workerdTarget())
