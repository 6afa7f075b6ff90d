// Prints the shard of `count` tenants for the router described by argv, as JSON: run under Node
// (with tsx), Bun and Deno by shard-router.test.ts to prove every runtime gives the same answers.
// Usage: <runtime> shard-assignments.mjs <count> <shard ids comma-separated> [tenant=shard,...]
import { TenantShardRouter } from '../src/shard-router.ts'

const [count, shardList, pinList = ''] = process.argv.slice(2)
const router = new TenantShardRouter({
  shards: shardList.split(',').map((id) => ({ id, shard: id })),
  pins: pinList === '' ? [] : pinList.split(',').map((pair) => pair.split('=')),
})
const out = []
for (let i = 0; i < Number(count); i++) out.push(router.shardIdFor(`tenant-${i}`))
console.log(
  JSON.stringify({
    runtime: typeof Bun !== 'undefined' ? 'bun' : typeof Deno !== 'undefined' ? 'deno' : 'node',
    out,
  }),
)
