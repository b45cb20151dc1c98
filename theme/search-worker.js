// Search worker: answers queries against the prebuilt index in search/idx/ (see reportsite/search.py).
// Runs off the main thread so typing never waits for a query. A module worker; the same file also exposes
// its query-cutting functions as self.ReportsiteSearch so tests can compare them with the index.
import { normalisedWithMap } from "./textmap.js";

const HAN = "\u3400-\u4dbf\u4e00-\u9fff";
const RUN = new RegExp(`[${HAN}]+|[0-9a-z]+`, "g");
const HAN_RUN = new RegExp(`^[${HAN}]+$`);
const SEP = `[^${HAN}0-9a-z]*`;
const OPEN_QUOTES = "\"“「『";
const CLOSE_QUOTES = "\"”」』";
const PAGE = 5; // results shown first (FIRST_RESULTS in search.py); their texts make snippets and check phrases
const MAX_VERIFY_ROUNDS = 6; // a quoted phrase checks at most this many pages of candidates

// ---------------------------------------------------------------------------------------------------
// Text: the same normalisation and cutting as reportsite/search.py

function fnv1a(text) {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function isHan(run) {
  return HAN_RUN.test(run);
}

/** NFKC + lower case, then Traditional -> Simplified for characters the index does not have itself. */
function normaliseQuery(text, t2s) {
  const plain = text.normalize("NFKC").toLowerCase();
  if (!t2s || !t2s.size) return plain;
  let out = "";
  for (const ch of plain) out += t2s.get(ch) || ch;
  return out;
}

function runsOf(text) {
  return text.match(RUN) || [];
}

/** Longest vocabulary word (3+ characters) starting at i, or "". */
function wordAt(run, i, vocab, maxLen) {
  for (let len = Math.min(maxLen, run.length - i); len >= 3; len -= 1) {
    const piece = run.substr(i, len);
    if (vocab.has(piece)) return piece;
  }
  return "";
}

/** Index terms for one run, in order, with where each starts: letters/digits whole; Han by forward
 *  maximum matching over the vocabulary, the rest covered by character pairs (every pair of adjacent
 *  characters is an index term). */
function segmentPieces(run, vocab, maxLen) {
  if (!isHan(run)) return [[run, 0]];
  if (run.length < 2) return [];
  const pieces = [];
  let i = 0;
  while (i < run.length) {
    const word = wordAt(run, i, vocab, maxLen);
    if (word) {
      pieces.push([word, i]);
      i += word.length;
    } else if (i + 1 >= run.length) {
      pieces.push([run.substr(run.length - 2, 2), run.length - 2]); // last character: pair it with the one before
      i += 1;
    } else {
      pieces.push([run.substr(i, 2), i]);
      i += wordAt(run, i + 1, vocab, maxLen) ? 1 : 2;
    }
  }
  return pieces;
}

function segmentRun(run, vocab, maxLen) {
  return [...new Set(segmentPieces(run, vocab, maxLen).map(([term]) => term))];
}

/** Query -> units. A unit is one run, or a quoted phrase (its runs must stand together in the text). */
function parseQuery(query, t2s) {
  const text = normaliseQuery(query, t2s);
  const units = [];
  let rest = "";
  let i = 0;
  while (i < text.length) {
    const open = OPEN_QUOTES.indexOf(text[i]);
    if (open >= 0) {
      let end = -1;
      for (let j = i + 1; j < text.length; j += 1) {
        if (CLOSE_QUOTES.includes(text[j]) || text[j] === OPEN_QUOTES[open]) { end = j; break; }
      }
      if (end > i) {
        const runs = runsOf(text.slice(i + 1, end));
        if (runs.length) units.push({ runs, quoted: true });
        rest += " ";
        i = end + 1;
        continue;
      }
    }
    rest += text[i];
    i += 1;
  }
  for (const run of runsOf(rest)) units.push({ runs: [run], quoted: false });
  // Runs typed together (2023年, 12345热线) are not required to stand together, but rank higher when they do.
  const glued = (rest.match(new RegExp(`(?:[${HAN}]+|[0-9a-z]+){2,}`, "g")) || []).map(runsOf);
  for (const runs of glued) if (runs.length > 1) units.push({ runs, quoted: false, soft: true });
  return units;
}

/** Units that rank and highlight: not the soft ones' parts alone when a part is one Han character. */
function nearUnits(units) {
  return units.filter((u) => u.soft || u.quoted || u.runs[0].length > 1 || !isHan(u.runs[0]));
}

/** The runs a unit is cut as: a quoted phrase of Han runs as one run, so that a vocabulary word across
 *  its gaps is one term ("行政复议 案件" -> 行政复议案件; the index has such words across a little punctuation). */
function termRuns(unit) {
  return unit.quoted && unit.runs.length > 1 && unit.runs.every(isHan) ? [unit.runs.join("")] : unit.runs;
}

function queryTerms(units, vocab, maxLen) {
  const terms = [];
  for (const unit of units) {
    if (!unit.soft) for (const run of termRuns(unit)) terms.push(...segmentRun(run, vocab, maxLen));
  }
  return [...new Set(terms)];
}

/** Character pairs where the pieces of one word (or the words of a quoted phrase) meet: 法律|明白人 -> 律明.
 *  Requiring them too finds the word as written, not its pieces scattered over a section. */
function junctions(units, vocab, maxLen) {
  const pairs = [];
  for (const unit of units) {
    if (unit.soft) continue;
    const runs = termRuns(unit);
    runs.forEach((run, r) => {
      let end = -1;
      for (const [piece, start] of segmentPieces(run, vocab, maxLen)) {
        if (start === end) pairs.push(run.substr(end - 1, 2)); // pieces that touch without overlapping
        end = start + piece.length;
      }
      const next = runs[r + 1];
      if (next && isHan(run) && isHan(next)) pairs.push(run[run.length - 1] + next[0]);
    });
  }
  return [...new Set(pairs)];
}

// ---------------------------------------------------------------------------------------------------
// Index files (format 4, see reportsite/search.py): manifest.json, t/*.json term files, d/*.json texts

let base = "";
let manifestPromise = null;
const files = new Map(); // url -> Promise<parsed file>
const decoded = new Map(); // term -> {idf, numbers, impacts} | facet key -> {numbers} | null

function load(path) {
  const url = base + path;
  if (!files.has(url)) {
    files.set(url, fetch(url).then((r) => {
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
      return r.json();
    }).catch((error) => { files.delete(url); throw error; }));
  }
  return files.get(url);
}

function manifest() {
  if (!manifestPromise) {
    manifestPromise = load("manifest.json").then((m) => {
      const t2s = new Map();
      for (let i = 0; i + 1 < m.t2s.length; i += 2) t2s.set(m.t2s[i], m.t2s[i + 1]);
      const words = vocabularyOf(m.vocab);
      const vocab = new Set(words);
      const maxLen = words.reduce((n, w) => Math.max(n, w.length), 3);
      return {
        ...m, t2sMap: t2s, vocabSet: vocab, maxLen, stopSet: new Set(m.stop),
        classes: digitValues(m.classes), impactTable: digitValues(m.impacts),
      };
    });
    manifestPromise.catch(() => { manifestPromise = null; });
  }
  return manifestPromise;
}

/** The manifest's vocabulary (front_coded in search.py: per word, how many leading characters it shares
 *  with the word before - one digit - then the rest of it) as a list of words. */
function vocabularyOf(text) {
  const words = [];
  for (const [, shared, rest] of text.matchAll(/(\d)(\D+)/g)) {
    words.push((words.length ? words[words.length - 1].slice(0, Number(shared)) : "") + rest);
  }
  return words;
}

/** The file holding a term: its own file when it is common, else a shared file chosen by hash. */
function shardOf(m, key) {
  return Object.hasOwn(m.ownFiles, key) ? `t/b${m.ownFiles[key]}.json` : `t/${fnv1a(key) % m.termShards}.json`;
}

// Postings are text (DIGITS in search.py): each character carries 5 bits, 32 added when more follow.
const DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DIGIT_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < DIGITS.length; i += 1) DIGIT_VALUE[DIGITS.charCodeAt(i)] = i;

/** One varint of `text` at reader.pos (base-32 digits; a digit's bit 32 says another follows). */
function readVarint(text, reader) {
  let value = 0;
  let scale = 1;
  let digit;
  do {
    digit = DIGIT_VALUE[text.charCodeAt(reader.pos)];
    reader.pos += 1;
    value += (digit & 31) * scale;
    scale *= 32;
  } while (digit & 32);
  return value;
}

/** A text of DIGITS as their values. */
function digitValues(text) {
  const values = new Uint8Array(text.length);
  for (let k = 0; k < text.length; k += 1) values[k] = DIGIT_VALUE[text.charCodeAt(k)];
  return values;
}

/** Section numbers (varint deltas) and impacts of one term: an impact is BM25's part of the term's count
 *  in the section (one character each, count - 1) and the section's length class, looked up in the table
 *  of the manifest (per count, a row of one impact - 1 per class). */
function decodePostings(m, deltas, countText, idf) {
  const count = countText.length;
  const numbers = new Int32Array(count);
  const impacts = new Uint8Array(count);
  const reader = { pos: 0 };
  let last = 0;
  for (let k = 0; k < count; k += 1) {
    last += readVarint(deltas, reader);
    numbers[k] = last;
    impacts[k] = m.impactTable[DIGIT_VALUE[countText.charCodeAt(k)] * m.lengthClasses + m.classes[last]] + 1;
  }
  return { idf, numbers, impacts };
}

/** Postings of the keys (terms and facet keys), and the snippet rows their files carry: n -> [rows]. */
async function postings(m, keys) {
  const shards = await Promise.all(keys.map((key) => load(shardOf(m, key))));
  const out = new Map();
  const rows = new Map();
  keys.forEach((key, index) => {
    const file = shards[index];
    if (!decoded.has(key)) {
      if (key.startsWith("@")) decoded.set(key, Object.hasOwn(file.f, key) ? decodeNumbers(file.f[key]) : null);
      else if (!Object.hasOwn(file.t, key)) decoded.set(key, null);
      else {
        const [idf, deltas, counts] = file.t[key];
        decoded.set(key, decodePostings(m, deltas, counts, idf / 1000));
      }
    }
    out.set(key, decoded.get(key));
    for (const [n, r, anchor, path, title, start, text, length] of (Object.hasOwn(file.s, key) ? file.s[key] : [])) {
      if (!rows.has(n)) rows.set(n, []);
      rows.get(n).push({ report: file.r[r], anchor, path, title, text, start, length });
    }
  });
  return { lists: out, rows };
}

/** A facet's section numbers (varint deltas, as postings without counts), as a set. */
function decodeNumbers(deltas) {
  const numbers = new Set();
  const reader = { pos: 0 };
  let last = 0;
  while (reader.pos < deltas.length) {
    last += readVarint(deltas, reader);
    numbers.add(last);
  }
  return { numbers };
}

/** The whole section from its text file (section n is in file n / docSections). */
async function sectionRow(m, n) {
  const file = Math.floor(n / m.docSections);
  const shard = await load(`d/${file}.json`);
  const row = shard.s[n - file * m.docSections];
  return { report: shard.r[row[0]], anchor: row[1], path: row[2], title: row[3], text: row[4], start: 0,
    length: row[4].length, whole: true };
}

// ---------------------------------------------------------------------------------------------------
// Matching in a section's text: phrases, nearness, snippets

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Inside a Han word a little punctuation may stand between characters (“八五”普法 for 八五普法), as the
// index pairs characters across it too (MAX_GAP and joinable() in reportsite/search.py).
const GAP = `[^${HAN}0-9a-z\\s]{0,3}`;

function unitPattern(unit) {
  const runs = unit.runs.map((run) => (isHan(run) ? [...run].map(escapeRegExp).join(GAP) : escapeRegExp(run)));
  return new RegExp(runs.join(SEP), "g");
}

/** Occurrences [start, end) of each unit in normalised text. */
function unitHits(norm, units) {
  return units.map((unit) => {
    const hits = [];
    const re = unitPattern(unit);
    let match;
    while ((match = re.exec(norm)) !== null) {
      hits.push([match.index, match.index + match[0].length]);
      if (match[0].length === 0) re.lastIndex += 1;
    }
    return hits;
  });
}

/** Boost in [0, 1]: units found as written (runs together), and all units close to one another. */
function nearness(hitsPerUnit, units) {
  const found = hitsPerUnit.filter((h) => h.length).length;
  const together = found / Math.max(1, units.length);
  if (units.length < 2 || found < 2) return together;
  // smallest window holding one occurrence of every found unit
  const events = [];
  hitsPerUnit.forEach((hits, u) => { for (const [s, e] of hits) events.push([s, e, u]); });
  events.sort((a, b) => a[0] - b[0]);
  const need = hitsPerUnit.filter((h) => h.length).length;
  const count = new Map();
  let best = Infinity;
  let left = 0;
  for (let right = 0; right < events.length; right += 1) {
    count.set(events[right][2], (count.get(events[right][2]) || 0) + 1);
    while (count.size === need) {
      best = Math.min(best, events[right][1] - events[left][0]);
      const u = events[left][2];
      count.set(u, count.get(u) - 1);
      if (!count.get(u)) count.delete(u);
      left += 1;
    }
  }
  const length = units.reduce((n, unit) => n + unit.runs.join("").length, 0);
  const close = best === Infinity ? 0 : Math.min(1, (length + 4) / best);
  return 0.5 * together + 0.5 * close;
}

/** Snippet as [[text, isHit], ...] around the densest place of hits; the page builds it with text nodes.
 *  `before` / `after`: the section goes on before / after `text` (a window of it). */
function snippet(text, norm, map, hitsPerUnit, before = false, after = false, width = 90) {
  const marks = [];
  for (const hits of hitsPerUnit) for (const [s, e] of hits) marks.push([map[s], map[e]]);
  marks.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged = [];
  for (const [s, e] of marks) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e); else merged.push([s, e]);
  }
  let start = 0;
  if (merged.length) {
    let bestCount = -1;
    for (const [s] of merged) {
      const count = merged.filter(([a, b]) => a >= s && b <= s + width).length;
      if (count > bestCount) { bestCount = count; start = s; }
    }
    start = Math.max(0, start - 20);
  }
  const end = Math.min(text.length, start + width + 20);
  const parts = [];
  if (start > 0 || before) parts.push(["…", false]);
  let pos = start;
  for (const [s, e] of merged) {
    if (e <= start || s >= end) continue;
    const a = Math.max(s, start);
    const b = Math.min(e, end);
    if (a > pos) parts.push([text.slice(pos, a), false]);
    parts.push([text.slice(a, b), true]);
    pos = b;
  }
  if (pos < end) parts.push([text.slice(pos, end), false]);
  if (end < text.length || after) parts.push(["…", false]);
  return parts;
}

/** A row with the units' occurrences in its text and heading. */
function matchRow(row, units) {
  const { norm, map } = normalisedWithMap(row.text);
  return { row, norm, map, hits: unitHits(norm, units), headHits: unitHits(row.title.normalize("NFKC").toLowerCase(), units) };
}

/** Of a section's snippet rows, the one whose window shows the most query units (then the most hits),
 *  or null when none will do: one that shows no query word makes a poor snippet, and a quoted phrase that
 *  stands in neither window nor heading needs the whole text to be confirmed or refused. */
function bestWindow(rows, units) {
  if (!rows) return null;
  let best = null;
  let bestKey = [-1, -1];
  for (const row of rows) {
    const found = matchRow(row, units);
    const present = found.hits.filter((h, i) => h.length || found.headHits[i].length).length;
    const key = [present, found.hits.reduce((n, h) => n + h.length, 0)];
    if (key[0] > bestKey[0] || (key[0] === bestKey[0] && key[1] > bestKey[1])) { best = found; bestKey = key; }
  }
  const phraseOk = units.every((u, i) => !u.quoted || best.hits[i].length || best.headHits[i].length);
  return phraseOk && bestKey[0] > 0 ? best : null;
}

// ---------------------------------------------------------------------------------------------------
// Query

function intersect(lists) {
  // lists: arrays of {numbers, impacts, idf}; returns Map number -> score
  const sorted = [...lists].sort((a, b) => a.numbers.length - b.numbers.length);
  let current = new Map();
  const first = sorted[0];
  first.numbers.forEach((n, k) => current.set(n, first.idf * first.impacts[k]));
  for (const list of sorted.slice(1)) {
    const next = new Map();
    const { numbers, impacts, idf } = list;
    for (let k = 0; k < numbers.length; k += 1) {
      const score = current.get(numbers[k]);
      if (score !== undefined) next.set(numbers[k], score + idf * impacts[k]);
    }
    current = next;
    if (!current.size) break;
  }
  return current;
}

const FACETS = { year: "y", province: "p", city: "c", level: "l", topic: "t" };

async function runQuery({ q, filters = {}, limit = PAGE }) {
  const started = performance.now();
  const m = await manifest();
  const units = parseQuery(q || "", m.t2sMap);
  const terms = queryTerms(units, m.vocabSet, m.maxLen);
  const searchable = terms.filter((t) => !m.stopSet.has(t));
  const near = nearUnits(units);
  const highlight = [...new Set(units.filter((u) => !u.soft).flatMap((u) => u.runs)
    .filter((r) => r.length > 1 || !isHan(r)))];
  const base = { q, units, terms, highlight, results: [], total: 0, approximate: false };
  if (!searchable.length) return { ...base, reason: units.length ? "short" : "empty", ms: performance.now() - started };

  const facetKeys = Object.entries(FACETS).filter(([name]) => filters[name]).map(([name, k]) => `@${k}:${filters[name]}`);
  const joins = junctions(units, m.vocabSet, m.maxLen).filter((t) => !m.stopSet.has(t) && !searchable.includes(t));
  const { lists, rows: windows } = await postings(m, [...searchable, ...joins, ...facetKeys]);
  const termLists = searchable.map((t) => lists.get(t));
  if (termLists.some((l) => !l)) return { ...base, reason: "none", ms: performance.now() - started };
  const narrow = (scores) => {
    for (const key of facetKeys) {
      const facet = lists.get(key);
      const kept = new Map();
      if (facet) for (const [n, s] of scores) if (facet.numbers.has(n)) kept.set(n, s);
      scores = kept;
    }
    return scores;
  };
  const joinLists = joins.map((t) => lists.get(t));
  let scores = joinLists.every(Boolean) ? narrow(intersect([...termLists, ...joinLists])) : new Map();
  let relaxed = false;
  if (!scores.size && joins.length && !units.some((u) => u.quoted)) {
    // Not found as written: show sections that have the pieces apart, and say so.
    scores = narrow(intersect(termLists));
    relaxed = scores.size > 0;
  }
  const ranked = [...scores].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const needsPhrase = near.some((u) => u.quoted);
  const shown = [];
  let checked = 0;
  let rounds = 0;
  while (checked < ranked.length && shown.length < limit && (rounds === 0 || needsPhrase) && rounds < MAX_VERIFY_ROUNDS) {
    const batch = ranked.slice(checked, checked + Math.max(limit - shown.length, PAGE));
    checked += batch.length;
    rounds += 1;
    // A section's snippet row (from the term files already read) when one shows the query words it has
    // - a quoted phrase must stand in it - else its whole text from its text file.
    let matched = batch.map(([n]) => bestWindow(windows.get(n), near));
    const missing = matched.map((found, k) => (found ? null : batch[k][0]));
    const fetched = await Promise.all(missing.map((n) => (n === null ? null : sectionRow(m, n).then((row) => matchRow(row, near)))));
    matched = matched.map((found, k) => found || fetched[k]);
    batch.forEach(([n, score], k) => {
      const { row, norm, map, hits, headHits } = matched[k];
      const phraseOk = near.every((u, i) => !u.quoted || hits[i].length || headHits[i].length);
      if (!phraseOk) return;
      const boost = nearness(hits.map((h, i) => (h.length ? h : headHits[i])), near);
      shown.push({
        n, score: score * (1 + boost), url: `${row.report[0]}?hl=${encodeURIComponent(highlight.join(" "))}#${row.anchor}`,
        page: row.report[0], anchor: row.anchor, label: row.report[1], year: row.report[2], province: row.report[3],
        city: row.report[4], level: row.report[5], path: row.path || "导语",
        snippet: snippet(row.text, norm, map, hits, row.start > 0, row.start + row.text.length < row.length),
      });
    });
  }
  shown.sort((a, b) => b.score - a.score || a.n - b.n);
  const approximate = needsPhrase && checked < ranked.length;
  const total = needsPhrase && !approximate ? shown.length : ranked.length;
  return { ...base, results: shown.slice(0, limit), total, approximate, relaxed, ms: performance.now() - started };
}

self.ReportsiteSearch = { fnv1a, normaliseQuery, parseQuery, segmentRun, queryTerms, junctions, runsOf, isHan,
  shardOf, vocabularyOf };

if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  self.onmessage = async (event) => {
    const message = event.data;
    if (message.type === "init") {
      base = message.base;
      manifest().then(() => self.postMessage({ type: "ready" }),
        (error) => self.postMessage({ type: "error", message: String(error.message || error) }));
      return;
    }
    if (message.type === "query") {
      try {
        const answer = await runQuery(message);
        self.postMessage({ type: "results", id: message.id, ...answer });
      } catch (error) {
        self.postMessage({ type: "error", id: message.id, message: String(error.message || error) });
      }
    }
  };
}
