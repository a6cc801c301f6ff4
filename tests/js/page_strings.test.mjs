// The worker page in English and Spanish: the same texts in both, each function with the same parameters.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LANGUAGES } from '../../src/browsergrid/web/js/i18n.js';
import { en, es, STRINGS } from '../../src/browsergrid/web/js/page-strings.js';

// Every leaf of a strings object, as [path, value], nested objects (the state names) included.
function leaves(object, prefix = '') {
  return Object.entries(object).flatMap(([key, value]) =>
    typeof value === 'object' ? leaves(value, `${prefix}${key}.`) : [[`${prefix}${key}`, value]],
  );
}

test('a strings object per language of i18n.js', () => {
  assert.deepEqual(Object.keys(STRINGS), LANGUAGES);
});

test('Spanish has exactly the keys of English, each of the same kind and arity', () => {
  const english = new Map(leaves(en));
  const spanish = new Map(leaves(es));
  assert.deepEqual([...spanish.keys()].sort(), [...english.keys()].sort());
  for (const [key, value] of english) {
    const other = spanish.get(key);
    assert.equal(typeof other, typeof value, key);
    if (typeof value === 'function') assert.equal(other.length, value.length, key);
    else assert.notEqual(other, '', key);
  }
});

test('functions give text in both languages, and the texts differ', () => {
  for (const strings of [en, es]) {
    assert.match(strings.about('Aula 3'), /Aula 3/);
    assert.match(strings.running(3, 50), /3 Web Workers/);
    assert.match(strings.running(1, 25), /25\u00a0%/); // a no-break space: "25" and "%" stay on one line
    assert.match(strings.slotComputing('prime_count', 7), /prime_count.*7/);
  }
  assert.notEqual(en.pause, es.pause);
  assert.equal(es.states.paused, 'en pausa');
});

test('every data-s key of index.html is a string of both languages; the state names stay English in en', () => {
  const html = readFileSync(
    new URL('../../src/browsergrid/web/index.html', import.meta.url),
    'utf8',
  );
  const keys = [...html.matchAll(/data-s(?:-label)?="([A-Za-z]+)"/g)].map((match) => match[1]);
  assert.ok(keys.length > 10);
  for (const key of keys) {
    assert.equal(typeof en[key], 'string', key);
    assert.equal(typeof es[key], 'string', key);
  }
  // tests/e2e read #state in English: the state names must be the states themselves
  for (const [state, name] of Object.entries(en.states)) assert.equal(name, state);
});
