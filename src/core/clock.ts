/** Monotonic time in seconds (process.hrtime), never the wall clock. */
export function nowSeconds(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export class Stopwatch {
  private readonly start = nowSeconds();
  elapsed(): number {
    return nowSeconds() - this.start;
  }
}

/** Runs `fn` and returns its result with the elapsed monotonic seconds. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number }> {
  const sw = new Stopwatch();
  const value = await fn();
  return { value, seconds: sw.elapsed() };
}
