/**
 * The entry for `key`, created by `make` and stored on first use (the grouping idiom: `getOrInsert(groups, k, () => []).push(v)`).
 * Named after the TC39 proposal `Map.prototype.getOrInsertComputed`, which Node 20 lacks.
 */
export function getOrInsert<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
