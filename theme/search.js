// Search UI. On the search page: results as you type (queries run in search-worker.js), filters, the URL
// holds the query and filters, arrow keys move through results. On a report page opened from a result
// (?hl=…#section): the searched words are highlighted in that section.
// Report text only ever reaches the page as DOM text nodes (never innerHTML).
import { normalisedWithMap } from "./textmap.js";

const FILTERS = ["year", "province", "level", "topic", "city"];
const HAN = "\u3400-\u4dbf\u4e00-\u9fff";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** [[text, isHit], …] -> a fragment of text nodes and <mark> elements holding text nodes. */
function highlighted(parts) {
  const fragment = document.createDocumentFragment();
  for (const [text, hit] of parts) {
    if (hit) fragment.append(el("mark", "search-hit", text));
    else fragment.append(document.createTextNode(text));
  }
  return fragment;
}

// ---------------------------------------------------------------------------------------------------
// Search page

function setupSearchPage(form) {
  const input = form.querySelector("#q");
  const results = document.getElementById("search-results");
  const status = document.getElementById("search-status");
  const empty = document.getElementById("search-empty");
  const more = document.getElementById("search-more");
  const worker = new Worker(new URL("./search-worker.js", import.meta.url), { type: "module" });
  const indexBase = new URL(form.dataset.index, location.href).href;
  let latest = 0;
  const FIRST = 5; // as many as fit a phone screen; their snippets mostly come with the word lists (search.py)
  let limit = FIRST;
  let timer = 0;

  const params = new URLSearchParams(location.search);
  input.value = params.get("q") || "";
  for (const name of FILTERS) {
    const select = form.elements.namedItem(name);
    const value = params.get(name);
    if (select && value) {
      if (![...select.options].some((o) => o.value === value)) select.append(new Option(value, value));
      select.value = value;
    }
  }

  function filters() {
    const out = {};
    for (const name of FILTERS) {
      const field = form.elements.namedItem(name);
      const value = field ? field.value : new URLSearchParams(location.search).get(name);
      if (value) out[name] = value;
    }
    return out;
  }

  function syncUrl() {
    const next = new URLSearchParams();
    if (input.value.trim()) next.set("q", input.value.trim());
    for (const [name, value] of Object.entries(filters())) next.set(name, value);
    const query = next.toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
  }

  function run() {
    syncUrl();
    latest += 1;
    if (!input.value.trim()) {
      results.replaceChildren();
      status.textContent = "";
      more.hidden = true;
      empty.hidden = false;
      return;
    }
    status.textContent = "正在搜索…";
    worker.postMessage({ type: "query", id: latest, q: input.value, filters: filters(), limit });
  }

  function schedule(resetLimit = true) {
    if (resetLimit) limit = FIRST;
    clearTimeout(timer);
    timer = setTimeout(run, 60);
  }

  function renderResult(result) {
    const item = el("li", "search-result");
    const link = el("a", "search-result-link");
    link.href = new URL(result.url, indexBase.replace(/search\/idx\/$/, "")).href;
    link.dataset.section = result.anchor;
    const where = el("span", "search-result-where");
    where.append(el("strong", "", result.label), document.createTextNode(` · ${result.year}年度`));
    if (result.province) where.append(document.createTextNode(` · ${result.province}`));
    link.append(where, el("span", "search-result-path", result.path));
    item.append(link, el("p", "search-snippet"));
    item.lastChild.append(highlighted(result.snippet));
    return item;
  }

  function renderEmpty(answer) {
    empty.hidden = false;
    const active = Object.keys(filters()).length;
    if (answer.reason === "short") {
      status.textContent = "请输入至少两个字的词语（单个汉字无法检索）。";
    } else if (active) {
      status.textContent = `在所选筛选条件下没有找到“${answer.q.trim()}”。可以清除筛选条件再试。`;
    } else if (answer.units.some((u) => u.quoted)) {
      status.textContent = `没有找到连在一起的“${answer.q.trim()}”。去掉引号可以查找分开出现的词语。`;
    } else {
      status.textContent = `没有找到“${answer.q.trim()}”。可以换一个说法，或者只用其中一个词。`;
    }
  }

  worker.onmessage = (event) => {
    const answer = event.data;
    if (answer.type === "error") {
      status.textContent = `搜索出错：${answer.message}`;
      return;
    }
    if (answer.type !== "results" || answer.id !== latest) return; // a newer query is on its way
    document.body.dataset.searchMs = String(answer.ms); // time spent in the worker (bench/search_bench.py)
    document.body.dataset.searchTotal = String(answer.total);
    document.body.dataset.searchAnswered = answer.q; // lets tests and tools wait for an answer
    results.replaceChildren(...answer.results.map(renderResult));
    more.hidden = answer.results.length >= answer.total || answer.results.length < limit;
    if (!answer.results.length) {
      renderEmpty(answer);
      return;
    }
    empty.hidden = true;
    const count = answer.approximate ? `至少 ${answer.results.length} 个` : `${answer.total} 个`;
    const apart = answer.relaxed ? `没有找到连在一起的“${answer.q.trim()}”，以下段落分开含有这些字词。` : "";
    status.textContent = `${apart}找到 ${count}段落，显示前 ${answer.results.length} 个（${Math.max(1, Math.round(answer.ms))} 毫秒）。`;
  };

  worker.postMessage({ type: "init", base: indexBase });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
    const first = results.querySelector("a");
    if (first) first.focus();
  });
  input.addEventListener("input", () => schedule());
  form.addEventListener("change", (event) => {
    if (event.target.matches("select")) schedule();
  });
  more.addEventListener("click", () => {
    limit += 10;
    schedule(false);
  });

  // Keyboard: ↓ from the box into the results, ↑ ↓ between them, Esc back to the box; Enter follows a link.
  form.addEventListener("keydown", (event) => {
    if (event.target === input && event.key === "ArrowDown") {
      const first = results.querySelector("a");
      if (first) { event.preventDefault(); first.focus(); }
    }
  });
  results.addEventListener("keydown", (event) => {
    const links = [...results.querySelectorAll("a.search-result-link")];
    const at = links.indexOf(document.activeElement);
    if (at < 0) return;
    if (event.key === "ArrowDown" && at + 1 < links.length) { event.preventDefault(); links[at + 1].focus(); }
    if (event.key === "ArrowUp") { event.preventDefault(); (at > 0 ? links[at - 1] : input).focus(); }
    if (event.key === "Escape") { event.preventDefault(); input.focus(); }
  });
  run();
}

// ---------------------------------------------------------------------------------------------------
// Report page: highlight the searched words in the section we arrived at

function highlightIn(container, words) {
  const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const owner = node.parentElement && node.parentElement.closest(".sec");
      if (owner !== container) return NodeFilter.FILTER_REJECT; // a subsection: not the one we arrived at
      if (node.parentElement.closest(".sec-tools, .sec-topics, script, style, mark")) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  let first = null;
  for (const node of nodes) {
    const { norm, map } = normalisedWithMap(node.data);
    const ranges = [];
    for (const pattern of words) {
      pattern.lastIndex = 0;
      let match;
      while ((match = pattern.exec(norm)) !== null) {
        ranges.push([map[match.index], map[match.index + match[0].length]]);
      }
    }
    ranges.sort((a, b) => b[0] - a[0]); // from the end, so earlier offsets stay valid while splitting
    let lastStart = Infinity;
    for (const [start, end] of ranges) {
      if (end > lastStart) continue; // overlaps a mark already made
      const hit = node.splitText(start);
      hit.splitText(end - start);
      const mark = el("mark", "search-hit");
      hit.replaceWith(mark);
      mark.append(hit);
      lastStart = start;
      first = mark;
    }
  }
  return first;
}

function highlightArrival() {
  const words = (new URLSearchParams(location.search).get("hl") || "")
    .normalize("NFKC").toLowerCase().split(/\s+/)
    .filter((w) => w && (w.length > 1 || !new RegExp(`[${HAN}]`).test(w)))
    .sort((a, b) => b.length - a.length);
  const id = decodeURIComponent(location.hash.slice(1));
  const target = id && document.getElementById(id);
  const section = target && target.closest(".sec");
  if (!words.length || !section) return;
  // a little punctuation may stand inside a word, as in the worker: 八五普法 marks “八五”普法
  const gap = `[^${HAN}0-9a-z\\s]{0,3}`;
  const escape = (ch) => ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const han = new RegExp(`[${HAN}]`);
  const patterns = words.map((w) => new RegExp([...w].map((ch, i, all) =>
    (i && han.test(ch) && han.test(all[i - 1]) ? gap : "") + escape(ch)).join(""), "g"));
  const first = highlightIn(section, patterns);
  section.classList.add("search-arrival");
  if (first) document.body.dataset.searchHighlighted = String(section.querySelectorAll("mark.search-hit").length);
}

const searchForm = document.getElementById("search-form");
if (searchForm && document.getElementById("search-results")) setupSearchPage(searchForm);
else if (location.search.includes("hl=")) highlightArrival();
