// Checks web/js/dashboard/strings.js: English and Spanish hold the same keys (a function takes the same parameters
// in both), dashboard.html names only keys they hold, and the switch (setLanguage) changes every text and number.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  formatAgo,
  formatCount,
  formatDateTime,
  formatDuration,
  formatRate,
} from '../../src/browsergrid/web/js/dashboard/format.js';
import {
  filterWorkers,
  summaryText,
  workerLabel,
} from '../../src/browsergrid/web/js/dashboard/model.js';
import {
  en,
  es,
  setLanguage,
  strings,
  translations,
} from '../../src/browsergrid/web/js/dashboard/strings.js';
import { LANGUAGES } from '../../src/browsergrid/web/js/i18n.js';

const html = readFileSync(
  new URL('../../src/browsergrid/web/dashboard.html', import.meta.url),
  'utf8',
);

// Where `a` and `b` differ in shape: keys one lacks, a function against a non-function, parameters counted apart.
function differences(a, b, path = '') {
  const found = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const where = `${path}${key}`;
    if (!(key in a) || !(key in b)) {
      found.push(`${where}: only in ${key in a ? 'the first' : 'the second'}`);
    } else if (typeof a[key] !== typeof b[key]) {
      found.push(`${where}: ${typeof a[key]} against ${typeof b[key]}`);
    } else if (typeof a[key] === 'function' && a[key].length !== b[key].length) {
      found.push(`${where}: ${a[key].length} parameters against ${b[key].length}`);
    } else if (typeof a[key] === 'object' && a[key] !== null) {
      found.push(...differences(a[key], b[key], `${where}.`));
    }
  }
  return found;
}

test('one translation per language of the page, English by default', () => {
  assert.deepEqual(Object.keys(translations), LANGUAGES);
  assert.equal(strings, en);
  assert.equal(en.locale, 'en');
  assert.equal(es.locale, 'es');
});

test('Spanish has exactly the keys of English, and each function takes the same parameters', () => {
  assert.deepEqual(differences(en, es), []);
  assert.deepEqual(differences(en, { ...es, extra: 'x', title: () => '' }), [
    'title: string against function',
    'extra: only in the second',
  ]); // the check itself finds what it should
  for (const [key, value] of Object.entries(es)) {
    if (typeof value === 'string') assert.notEqual(value, '', key);
  }
});

test('every key dashboard.html names (data-s, data-s-label, -placeholder, -empty) is a text in both languages', () => {
  const keys = [...html.matchAll(/data-s(?:-label|-placeholder|-empty)?="(\w+)"/g)].map(
    ([, key]) => key,
  );
  assert.ok(keys.length > 50, `found ${keys.length}`);
  for (const key of keys) {
    assert.equal(typeof en[key], 'string', `en ${key}`);
    assert.equal(typeof es[key], 'string', `es ${key}`);
  }
  // the switch offers every language, each button named in its own language
  const buttons = [...html.matchAll(/data-lang="(\w+)" lang="(\w+)"[^>]*title="([^"]+)">(\w+)</g)];
  assert.deepEqual(
    buttons.map(([, lang, own, title, text]) => [lang, own, title, text]),
    [
      ['en', 'en', 'English', 'EN'],
      ['es', 'es', 'Español', 'ES'],
    ],
  );
  assert.deepEqual(en.languageNames, es.languageNames);
});

test('Spanish texts read as Spanish', () => {
  assert.equal(es.jobsHeading, 'Trabajos');
  assert.equal(es.workersHeading, 'Trabajadores conectados');
  assert.equal(es.totalQueued, 'en cola');
  assert.equal(es.pageRange(1, 25, 1000), '1–25 de 1000');
  assert.equal(es.summaryEntry(812, 'Chrome 131 en Linux'), '812 × Chrome 131 en Linux');
  assert.equal(
    es.resultLine(7, null, 'sha256', 3, '1,5'),
    'tarea 7 (bienvenida) · sha256 · trabajador #3 · 1,5 ms',
  );
  assert.match(es.workersUnlisted(3), /primeros 250\)$/);
});

test('setLanguage switches every text and number format at once, and back', () => {
  const chrome = { id: 1, kind: 'browser', browser: 'Chrome 131', os: 'Linux', state: 'idle' };
  try {
    assert.equal(setLanguage('es'), es);
    assert.equal(strings, es);
    assert.equal(formatCount(1234567), '1.234.567');
    assert.equal(formatRate(2.46), '2,5');
    assert.equal(formatDuration(2 * 3600 + 5 * 60), '2 h 05 min');
    assert.equal(formatAgo(100, 280), 'hace 3 min');
    assert.equal(formatAgo(100, 101), 'ahora mismo');
    assert.match(formatDateTime(1764100000.5), /nov 2025/);
    assert.equal(workerLabel(chrome), 'Chrome 131 en Linux');
    assert.equal(workerLabel({ kind: 'exercise' }), 'página del aula');
    assert.equal(summaryText([]), 'ningún trabajador');
    assert.deepEqual(filterWorkers([chrome], 'espera'), [chrome], 'the state as the page names it');
    assert.deepEqual(filterWorkers([chrome], 'idle'), [chrome], 'and as sent');
  } finally {
    setLanguage('en');
  }
  assert.equal(strings, en);
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(workerLabel(chrome), 'Chrome 131 on Linux');
  assert.deepEqual(filterWorkers([chrome], 'espera'), [], 'the filter follows the language back');
  assert.equal(setLanguage('fr'), en, 'a language the page lacks is English');
  assert.equal(setLanguage('toString'), en);
});
