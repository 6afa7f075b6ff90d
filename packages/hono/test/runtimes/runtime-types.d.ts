// The little of each runtime's own modules the entries use; their type packages are not installed.
declare module 'bun:test' {
  export function test(name: string, fn: () => Promise<void> | void): void
}
