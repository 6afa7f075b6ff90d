// The part of autocannon's API the HTTP section uses (the package ships no types).
declare module 'autocannon' {
  interface Histogram {
    average: number
    p50: number
    p99: number
    total: number
  }
  interface Client {
    setHeaders(headers: Record<string, string>): void
  }
  interface Options {
    url: string
    connections?: number
    duration?: number
    setupClient?: (client: Client) => void
  }
  interface Result {
    requests: Histogram
    latency: Histogram
    duration: number
    non2xx: number
    errors: number
  }
  function autocannon(options: Options): Promise<Result>
  export default autocannon
}
