/**
 * Works through a list with several workers at a time (each takes the next item when it is done
 * with one) and lets each item go once taken, so a long plan shrinks as the work goes on. On a
 * failure the others finish the item they are on and take no other; once all have stopped, the
 * first failure is thrown.
 */
export async function eachAtOnce<T>(items: (T | undefined)[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    try {
      while (!stopped && next < items.length) {
        const item = items[next]!;
        items[next++] = undefined;
        await work(item);
      }
    } catch (err) {
      stopped = true;
      throw err;
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(width, items.length) }, worker));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
