// Page behaviour shared by every page: reading settings, section links, QR codes, print.
import { qrcode } from "./vendor/qrcode.mjs";

const root = document.documentElement;

function store(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: setting lasts for this page only */ }
}

function syncReadingButtons() {
  const size = root.getAttribute("data-fontsize") || "m";
  for (const button of document.querySelectorAll("[data-fontsize-set]")) {
    button.setAttribute("aria-pressed", String(button.dataset.fontsizeSet === size));
  }
  for (const button of document.querySelectorAll("[data-elder-toggle]")) {
    button.setAttribute("aria-pressed", String(root.classList.contains("elder")));
  }
}

function setupReadingSettings() {
  document.addEventListener("click", (event) => {
    const sizeButton = event.target.closest("[data-fontsize-set]");
    if (sizeButton) {
      root.setAttribute("data-fontsize", sizeButton.dataset.fontsizeSet);
      store("rs-fontsize", sizeButton.dataset.fontsizeSet);
      syncReadingButtons();
    }
    if (event.target.closest("[data-elder-toggle]")) {
      const on = root.classList.toggle("elder");
      store("rs-elder", on ? "1" : "0");
      syncReadingButtons();
    }
  });
  syncReadingButtons();
}

export function toast(message) {
  const box = document.querySelector(".toast");
  if (!box) return;
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 2500);
}

/** The shareable URL of a section: the page's canonical URL plus the anchor. */
export function sectionUrl(id) {
  const canonical = document.querySelector('link[rel="canonical"]');
  const base = canonical ? canonical.href : location.href.split("#")[0];
  return id ? `${base}#${id}` : base;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function qrSvg(text) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const count = qr.getModuleCount();
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `-2 -2 ${count + 4} ${count + 4}`);
  svg.setAttribute("role", "img");
  let d = "";
  for (let r = 0; r < count; r += 1) {
    for (let c = 0; c < count; c += 1) if (qr.isDark(r, c)) d += `M${c} ${r}h1v1h-1z`;
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(path);
  return svg;
}

function showQr(id) {
  const dialog = document.querySelector(".qr-dialog");
  if (!dialog) return;
  const url = sectionUrl(id);
  dialog.querySelector(".qr-box").replaceChildren(qrSvg(url));
  dialog.querySelector(".qr-url").textContent = url;
  dialog.showModal();
}

function markTarget() {
  for (const old of document.querySelectorAll(".sec.is-target")) old.classList.remove("is-target");
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id) return;
  const target = document.getElementById(id);
  const section = target && target.closest(".sec");
  if (section) section.classList.add("is-target");
}

function setupSections() {
  document.addEventListener("click", async (event) => {
    const link = event.target.closest("[data-share-section]");
    if (link) {
      event.preventDefault();
      const id = link.dataset.shareSection;
      const url = sectionUrl(id);
      if (id) history.replaceState(null, "", `#${id}`);
      markTarget();
      try {
        await copyText(url);
        toast("已复制链接：" + url);
      } catch {
        toast("请手动复制链接：" + url);
      }
      return;
    }
    const qr = event.target.closest("[data-qr-section]");
    if (qr) showQr(qr.dataset.qrSection);
    if (event.target.closest("[data-print]")) window.print();
  });
  window.addEventListener("hashchange", markTarget);
  markTarget();
}

setupReadingSettings();
setupSections();
