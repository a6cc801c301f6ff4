// A table body kept in step with a list of rows, touching the DOM only where a cell's value changed,
// and the previous/next controls of a paginated table.
import { strings } from './strings.js';

// columns: [{className, value(row, context) -> string, paint?(cell, row, value, context)}]; paint defaults to
// setting the text. key(row) names a row; attrs(row) -> {attribute: value} set on its <tr>. With no rows, the
// tbody is empty and `note` (an element outside the table, if given) shows empty(context).
export class RowTable {
  constructor(tbody, { key, columns, attrs = () => ({}), empty = () => '' }, note = null) {
    this.tbody = tbody;
    this.key = key;
    this.columns = columns;
    this.attrs = attrs;
    this.empty = empty;
    this.note = note;
    this.shown = new Map(); // key -> {tr, cells, values, attrs}
  }

  render(rows, context = {}) {
    const next = new Map();
    const order = [];
    for (const row of rows) {
      const key = this.key(row);
      const entry = this.shown.get(key) ?? this.createRow();
      this.updateRow(entry, row, context);
      next.set(key, entry);
      order.push(entry.tr);
    }
    this.shown = next;
    if (this.note) {
      const text = order.length === 0 ? this.empty(context) : '';
      if (this.note.textContent !== text) this.note.textContent = text;
      this.note.hidden = text === '';
    }
    const current = this.tbody.children;
    const same = current.length === order.length && order.every((tr, i) => current[i] === tr);
    if (!same) this.tbody.replaceChildren(...order);
  }

  // Paints every cell again at the next render(), values unchanged or not (the language changed).
  repaint() {
    for (const entry of this.shown.values()) entry.values.fill(undefined);
  }

  createRow() {
    const tr = document.createElement('tr');
    const cells = this.columns.map(({ className }) => {
      const td = document.createElement('td');
      if (className) td.className = className;
      tr.append(td);
      return td;
    });
    return { tr, cells, values: this.columns.map(() => undefined), attrs: {} };
  }

  updateRow(entry, row, context) {
    for (const [name, value] of Object.entries(this.attrs(row))) {
      if (entry.attrs[name] !== value) {
        entry.tr.setAttribute(name, value);
        entry.attrs[name] = value;
      }
    }
    this.columns.forEach((column, i) => {
      const value = column.value(row, context);
      if (entry.values[i] === value) return;
      entry.values[i] = value;
      if (column.paint) column.paint(entry.cells[i], row, value, context);
      else entry.cells[i].textContent = value;
    });
  }
}

// Previous/next buttons and the "1–25 of 1000" text; onPage(n) asks for page n.
export class Pager {
  constructor({ prev, next, range }, onPage) {
    this.el = { prev, next, range };
    this.current = 1;
    prev.addEventListener('click', () => onPage(this.current - 1));
    next.addEventListener('click', () => onPage(this.current + 1));
  }

  // info: the result of model.page()
  render(info) {
    this.current = info.page;
    const text =
      info.total === 0 ? strings.pageEmpty : strings.pageRange(info.first, info.last, info.total);
    if (this.el.range.textContent !== text) this.el.range.textContent = text;
    this.el.prev.disabled = info.page <= 1;
    this.el.next.disabled = info.page >= info.pages;
  }
}
