// Text positions shared by the search worker (snippets, phrase checks) and the report page (highlighting
// the searched words): both match in normalised text and mark the original.

/** Normalised text (NFKC, lower case, as reportsite/search.py normalises) with a map back to positions in
 * the original text: map[i] is where the character that gave norm[i] starts; map[norm.length] is the end. */
export function normalisedWithMap(text) {
  let norm = "";
  const map = [];
  let pos = 0;
  for (const ch of text) {
    const n = ch.normalize("NFKC").toLowerCase();
    for (let k = 0; k < n.length; k += 1) map.push(pos);
    norm += n;
    pos += ch.length;
  }
  map.push(pos);
  return { norm, map };
}
