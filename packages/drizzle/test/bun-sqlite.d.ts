// Bun's built-in SQLite module, declared for the type checker: this package type-checks with
// Node's types, and test/bun-sqlite.spec.ts only ever runs inside Bun.
declare module 'bun:sqlite' {
  export class Database {
    constructor(filename?: string)
    close(): void
  }
}
