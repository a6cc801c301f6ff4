import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_LANGUAGE,
  LANGUAGES,
  pageLanguage,
  pickLanguage,
  rememberLanguage,
  storedLanguage,
} from '../../src/browsergrid/web/js/i18n.js';

test('English and Spanish, English by default', () => {
  assert.deepEqual(LANGUAGES, ['en', 'es']);
  assert.equal(DEFAULT_LANGUAGE, 'en');
  assert.equal(pickLanguage(), 'en');
  assert.equal(pickLanguage({ preferred: ['fr-FR', 'de'] }), 'en');
});

test('the first of the browser languages that is ours, by its base tag', () => {
  assert.equal(pickLanguage({ preferred: ['es-AR', 'en-US'] }), 'es');
  assert.equal(pickLanguage({ preferred: ['fr', 'ES'] }), 'es');
  assert.equal(pickLanguage({ preferred: ['en-GB', 'es'] }), 'en');
});

test('?lang= wins over the remembered choice, which wins over the browser', () => {
  assert.equal(pickLanguage({ search: '?lang=es', stored: 'en', preferred: ['en'] }), 'es');
  assert.equal(pickLanguage({ search: '?lang=xx', stored: 'es', preferred: ['en'] }), 'es');
  assert.equal(pickLanguage({ stored: 'en', preferred: ['es'] }), 'en');
});

test('the choice is remembered, and a storage that refuses is survived', () => {
  const items = new Map();
  const storage = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v) };
  assert.equal(storedLanguage(storage), null);
  rememberLanguage(storage, 'es');
  assert.equal(storedLanguage(storage), 'es');
  const refusing = {
    getItem() {
      throw new Error('denied');
    },
    setItem() {
      throw new Error('denied');
    },
  };
  assert.equal(storedLanguage(refusing), null);
  rememberLanguage(refusing, 'es'); // no throw
  assert.equal(storedLanguage(undefined), null);
});

test('pageLanguage reads the address, the storage and the browser', () => {
  const win = {
    location: { search: '' },
    localStorage: null,
    navigator: { languages: ['es-MX'], language: 'es-MX' },
  };
  assert.equal(pageLanguage(win), 'es');
  assert.equal(pageLanguage({ ...win, location: { search: '?lang=en' } }), 'en');
});

test('pageLanguage survives a window whose localStorage getter throws', () => {
  const win = { location: { search: '' }, navigator: { languages: ['es'] } };
  Object.defineProperty(win, 'localStorage', {
    get() {
      throw new Error('SecurityError');
    },
  });
  assert.equal(pageLanguage(win), 'es');
});
