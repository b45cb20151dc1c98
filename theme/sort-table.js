// Sortable tables: <table data-sortable>; a header sorts by its column when clicked.
// Cells sort by data-sort-value when given, else by their text; data-sort-type="number" on the header
// sorts numerically (empty cells last); data-sort="none" leaves a column unsortable.

const collator = new Intl.Collator("zh-CN", { numeric: true });

function cellKey(cell) {
  return cell ? (cell.dataset.sortValue ?? cell.textContent.trim()) : "";
}

function sortBy(table, column, header) {
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  const numeric = header.dataset.sortType === "number";
  for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = [...body.rows];
  rows.sort((a, b) => {
    const x = cellKey(a.cells[column]);
    const y = cellKey(b.cells[column]);
    if (numeric) {
      if (x === "" || y === "") return (x === "") - (y === "");  // no value: always last
      return ascending ? Number(x) - Number(y) : Number(y) - Number(x);
    }
    return ascending ? collator.compare(x, y) : collator.compare(y, x);
  });
  body.append(...rows);
}

for (const table of document.querySelectorAll("table[data-sortable]")) {
  if (!table.tHead || !table.tBodies.length) continue;
  [...table.tHead.rows[0].cells].forEach((header, column) => {
    if (header.dataset.sort === "none") return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort-button";
    button.title = "点击排序";
    button.append(...header.childNodes);
    header.append(button);
    button.addEventListener("click", () => sortBy(table, column, header));
  });
}
