import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { TenantMetrics } from './tenant-metrics'

const dashboard = JSON.parse(
  readFileSync(new URL('../grafana/tenant-dashboard.json', import.meta.url), 'utf8'),
)
const expressions: string[] = dashboard.panels.flatMap((panel: { targets: { expr: string }[] }) =>
  panel.targets.map((target) => target.expr),
)

describe('the example Grafana dashboard', () => {
  it('queries only series that TenantMetrics exposes, with its default labels', async () => {
    const metrics = new TenantMetrics()
    metrics.recordRequest('acme', { status: 200, durationMs: 1 })
    const exposed = new Set(
      (await metrics.registry.metrics())
        .split('\n')
        .filter((line) => line.startsWith('# TYPE '))
        .flatMap((line) => {
          const [, , name, type] = line.split(' ')
          return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]
        }),
    )
    const queried = new Set(expressions.flatMap((expr) => expr.match(/\btenant_[a-z_]+\b/g) ?? []))
    expect(queried.size).toBeGreaterThan(5)
    for (const name of queried) expect(exposed, name).toContain(name)
    for (const expr of expressions) {
      for (const [, label, value] of expr.matchAll(/\b(tenant|outcome)="([^"]*)"/g)) {
        if (label === 'tenant') expect([metrics.overflowLabel, metrics.missingLabel]).toContain(value)
        else expect(['success', 'client_error', 'server_error']).toContain(value)
      }
    }
  })

  it('has balanced parentheses and braces in every query', () => {
    for (const expr of expressions) {
      let depth = 0
      for (const char of expr) {
        if (char === '(' || char === '{' || char === '[') depth += 1
        if (char === ')' || char === '}' || char === ']') depth -= 1
        expect(depth, expr).toBeGreaterThanOrEqual(0)
      }
      expect(depth, expr).toBe(0)
    }
  })
})
