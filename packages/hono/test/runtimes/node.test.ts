import { inProcess } from '@tenant/fetch/testing'
import { describe, it } from 'vitest'
import { honoCases } from '../portable/hono-cases'

// The Hono cases on Node (the @tenant/fetch cases run on Node in packages/fetch/test).
describe('runtime: node', () => {
  for (const testCase of honoCases) it(testCase.name, () => testCase.run(inProcess))
})
