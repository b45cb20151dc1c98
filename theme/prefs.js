// Applies the reader's saved font size and 适老化 mode before first paint (classic script in <head>).
(function () {
  try {
    var root = document.documentElement;
    var size = localStorage.getItem("rs-fontsize");
    if (size === "s" || size === "m" || size === "l") root.setAttribute("data-fontsize", size);
    if (localStorage.getItem("rs-elder") === "1") root.classList.add("elder");
  } catch (e) { /* storage may be disabled; defaults apply */ }
})();
