/** How many presence checks run at once. */
const AT_ONCE = 16;

/**
 * The ids of `ids` whose `size` is null (absent), asked AT_ONCE at a time: the packs of a recovery
 * point, checked against a vault's storage or through its session.
 */
export async function absentOf<T>(ids: readonly T[], size: (id: T) => Promise<number | null>): Promise<T[]> {
  const absent: T[] = [];
  for (let i = 0; i < ids.length; i += AT_ONCE) {
    const batch = ids.slice(i, i + AT_ONCE);
    const sizes = await Promise.all(batch.map(size));
    batch.forEach((id, j) => sizes[j] === null && absent.push(id));
  }
  return absent;
}
