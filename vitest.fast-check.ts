import fc from 'fast-check'

// Property tests draw a new seed per run locally, so every run explores new cases; a failure prints
// its seed and path, and FC_SEED=<seed> replays the run. CI pins one seed so that a clean clone of a
// commit always runs the same cases: a red CI is then a fact about the commit, never a draw.
// An empty FC_SEED counts as unset (Number('') would silently pin seed 0).
const pinned = process.env.FC_SEED || (process.env.CI ? '20261126' : undefined)
if (pinned !== undefined) {
  const seed = Number(pinned)
  if (!Number.isSafeInteger(seed))
    throw new Error(`FC_SEED must be an integer, got ${JSON.stringify(pinned)}`)
  fc.configureGlobal({ seed })
}
