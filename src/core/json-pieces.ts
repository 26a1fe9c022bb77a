/**
 * JSON text in pieces: the same text as JSON.stringify, without ever holding all of it. A
 * checkpoint of a large backup lists tens of thousands of files; as one string, then one buffer,
 * then one compressed buffer, it cost three times its size at once.
 */

/** By default, containers this deep or deeper are written by JSON.stringify in one piece. */
const SPLIT_DEPTH = 2;
/** Pieces are gathered up to about this many characters before they are handed on. */
const PIECE_CHARS = 64 * 1024;

/** Arrays and plain objects without toJSON: JSON.stringify writes those element by element. */
function isContainer(v: unknown): v is readonly unknown[] | Record<string, unknown> {
  if (typeof v !== 'object' || v === null || typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Elements written together by one JSON.stringify call. */
const RUN = 256;

/** An element of a container at `depth` that is written part by part. */
function descends(v: unknown, depth: number, split: number): boolean {
  return depth + 1 < split && isContainer(v);
}

function* parts(value: unknown, depth: number, split: number): Generator<string> {
  if (depth >= split || !isContainer(value)) {
    const s = JSON.stringify(value) as string | undefined;
    if (s === undefined) throw new TypeError('value is not JSON-serializable');
    yield s;
    return;
  }
  if (Array.isArray(value)) {
    yield '[';
    for (let i = 0; i < value.length; ) {
      if (i > 0) yield ',';
      if (descends(value[i], depth, split)) {
        yield* parts(value[i], depth + 1, split);
        i++;
        continue;
      }
      // A run of elements written whole: one JSON.stringify for up to RUN of them (a call for each
      // cost several times the text), which writes null for what it cannot write, as in the array.
      let j = i + 1;
      while (j < value.length && j - i < RUN && !descends(value[j], depth, split)) j++;
      yield JSON.stringify(value.slice(i, j)).slice(1, -1);
      i = j;
    }
    yield ']';
    return;
  }
  yield '{';
  let first = true;
  for (const [k, v] of Object.entries(value)) {
    // In an object JSON.stringify leaves out a property it cannot write.
    const s = descends(v, depth, split) ? null : (JSON.stringify(v) as string | undefined);
    if (s === undefined) continue;
    yield `${first ? '' : ','}${JSON.stringify(k)}:`;
    first = false;
    if (s === null) yield* parts(v, depth + 1, split);
    else yield s;
  }
  yield '}';
}

/**
 * The JSON text of `value` (exactly JSON.stringify's, which must not return undefined for it:
 * TypeError otherwise) as strings of about 64 Ki characters: each is at most that plus one part
 * written whole (a run of up to 256 elements, or a container `split` levels down or deeper, by
 * default the third). A toJSON method inside must not depend on the key it is called with (Date's
 * does not): parts written on their own pass it another.
 */
export function* jsonPieces(value: unknown, split = SPLIT_DEPTH): Generator<string> {
  let acc = '';
  for (const p of parts(value, 0, split)) {
    acc += p;
    if (acc.length >= PIECE_CHARS) {
      yield acc;
      acc = '';
    }
  }
  if (acc.length > 0) yield acc;
}
