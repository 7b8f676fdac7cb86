/** Bounded concurrency: work over a list with at most `n` items in flight. */

/** Runs `fn` over `items` with at most `n` in flight; the first failure stops new work and is rethrown. */
export async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        if (failed === null) failed = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== null) throw failed;
}

/** `fn` over `items` with at most `n` in flight, the results in the items' order. */
export async function poolMap<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  await pool(
    items.map((item, i) => ({ item, i })),
    n,
    async ({ item, i }) => {
      out[i] = await fn(item);
    },
  );
  return out;
}
