// robustad site: sort any table with class "sortable" by a column, filter the ranking by its select boxes.
// Plain JavaScript with no dependency, so the pages work from disk with no network.
"use strict";

function sortValue(cell) {
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const number = raw === "" ? NaN : Number(raw);
  return { raw: raw, number: number };
}

function compare(a, b, numeric) {
  if (numeric) {
    if (isNaN(a.number) && isNaN(b.number)) return 0;
    if (isNaN(a.number)) return 1; // undefined values last, whatever the direction
    if (isNaN(b.number)) return -1;
    return a.number - b.number;
  }
  return a.raw.localeCompare(b.raw);
}

function sortTable(table, header) {
  const index = Array.from(header.parentNode.children).indexOf(header);
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const values = rows.map((row) => sortValue(row.cells[index]));
  const numeric = values.every((v) => v.raw === "" || !isNaN(v.number));
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  const order = rows.map((row, i) => i).sort((i, j) => {
    const sign = ascending ? 1 : -1;
    const undefinedLast = numeric && (isNaN(values[i].number) || isNaN(values[j].number));
    const result = compare(values[i], values[j], numeric);
    return undefinedLast ? result : sign * result || i - j;
  });
  table.querySelectorAll("th").forEach((th) => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  order.forEach((i) => body.appendChild(rows[i]));
}

function applyFilters(form, table) {
  const chosen = Array.from(form.querySelectorAll("select[data-filter]"))
    .filter((select) => select.value !== "")
    .map((select) => [select.dataset.filter, select.value]);
  let shown = 0;
  Array.from(table.tBodies[0].rows).forEach((row) => {
    const visible = chosen.every(([name, value]) => row.dataset[name] === value);
    row.hidden = !visible;
    shown += visible ? 1 : 0;
  });
  const output = form.querySelector("#shown");
  if (output) output.textContent = shown + " of " + table.tBodies[0].rows.length + " lines";
}

document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((header) => {
    header.addEventListener("click", () => sortTable(table, header));
  });
});

const filters = document.getElementById("filters");
const ranking = document.getElementById("ranking");
if (filters && ranking) {
  filters.addEventListener("change", () => applyFilters(filters, ranking));
  applyFilters(filters, ranking);
}
