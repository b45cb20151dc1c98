// Key figures: open a report at a figure's sentence and highlight it (links like ?fig=s5-n3#s5).
// The sentence comes from the key-figures panel (data-sentence); it is found in the section's own text
// nodes, ignoring white space, and wrapped in <mark> elements through DOM Ranges (never innerHTML).

const MARK_CLASS = "fig-hl";

function clearMarks() {
  for (const mark of document.querySelectorAll(`mark.${MARK_CLASS}`)) {
    const parent = mark.parentNode;
    mark.replaceWith(...mark.childNodes);
    parent.normalize();
  }
}

/** Text nodes of a section's own body: not its heading, topic chips or subsections. */
function ownTextNodes(section) {
  const walker = document.createTreeWalker(section, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const holder = node.parentElement;
      if (!holder || holder.closest(".sec") !== section) return NodeFilter.FILTER_REJECT;
      if (holder.closest(".sec-h, .sec-topics, .visually-hidden, script, style")) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  const nodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) nodes.push(node);
  return nodes;
}

/** Wrap the characters [start, end) of the section text (white space removed) in <mark>s. */
function markRange(nodes, start, end) {
  const pieces = [];
  let position = 0;
  for (const node of nodes) {
    const text = node.data;
    let from = -1;
    let to = -1;
    for (let i = 0; i < text.length; i += 1) {
      if (/\s/.test(text[i])) continue;
      if (position >= start && position < end) {
        if (from < 0) from = i;
        to = i + 1;
      }
      position += 1;
    }
    if (from >= 0) pieces.push([node, from, to]);
    if (position >= end) break;
  }
  const marks = [];
  for (const [node, from, to] of pieces.reverse()) {
    const range = document.createRange();
    range.setStart(node, from);
    range.setEnd(node, to);
    const mark = document.createElement("mark");
    mark.className = MARK_CLASS;
    range.surroundContents(mark);
    marks.unshift(mark);
  }
  return marks;
}

function highlight(figId) {
  clearMarks();
  if (!figId) return;
  const item = [...document.querySelectorAll("[data-fig]")].find((el) => el.dataset.fig === figId);
  if (!item) return;
  const heading = document.getElementById(item.dataset.sec);
  const section = heading && heading.closest(".sec");
  if (!section) return;
  const nodes = ownTextNodes(section);
  const flat = nodes.map((n) => n.data.replace(/\s+/g, "")).join("");
  const sentence = (item.dataset.sentence || "").replace(/\s+/g, "");
  const start = sentence ? flat.indexOf(sentence) : -1;
  if (start < 0) return;
  const marks = markRange(nodes, start, start + sentence.length);
  if (!marks.length) return;
  marks[0].setAttribute("tabindex", "-1");
  marks[0].id = "fig-target";
  showAfterLoad(marks[0]);
}

/** Scroll to and focus the sentence once the browser has finished its own jump to the #section. */
function showAfterLoad(mark) {
  const show = () => {
    if (!mark.isConnected) return;
    mark.scrollIntoView({ block: "center" });
    mark.focus({ preventScroll: true });
  };
  if (document.readyState === "complete") show();
  else window.addEventListener("load", () => setTimeout(show, 0), { once: true });
}

function currentFig() {
  return new URLSearchParams(location.search).get("fig");
}

document.addEventListener("click", (event) => {
  const link = event.target.closest('a[href^="?fig="]');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  highlight(currentFig());
});
window.addEventListener("popstate", () => highlight(currentFig()));
highlight(currentFig());
