import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defaultSettings,
  defaultWorkers,
  loadSettings,
  MAX_WORKERS,
  SETTINGS_KEY,
  SHARES,
  saveSettings,
  workerChoices,
  workersFromQuery,
} from '../../src/browsergrid/web/js/settings.js';

import { memoryStorage, refusing } from './_storage.mjs';

test('by default one core is left free, at least one worker runs, at full share, never paused', () => {
  assert.equal(defaultWorkers(8), 7);
  assert.equal(defaultWorkers(2), 1);
  assert.equal(defaultWorkers(1), 1);
  assert.equal(defaultWorkers(undefined), 1); // a browser that does not tell: as if 2 cores
  assert.equal(defaultWorkers(4096), MAX_WORKERS);
  assert.deepEqual(defaultSettings(4), {
    workers: 3,
    share: 1,
    pauseWhenHidden: false,
    pauseOnBattery: false,
  });
  assert.deepEqual(SHARES, [0.25, 0.5, 0.75, 1]);
});

test('saved settings come back, under one key, as versioned JSON', () => {
  const storage = memoryStorage();
  const chosen = { workers: 2, share: 0.5, pauseWhenHidden: true, pauseOnBattery: true };
  assert.equal(saveSettings(storage, chosen), true);
  assert.deepEqual([...storage.items.keys()], [SETTINGS_KEY]);
  assert.deepEqual(JSON.parse(storage.items.get(SETTINGS_KEY)), { v: 1, ...chosen });
  assert.deepEqual(loadSettings(storage, 4), chosen);
});

test('a storage that throws, or holds nothing of ours, gives the defaults; saving reports failure', () => {
  assert.deepEqual(loadSettings(refusing, 4), defaultSettings(4));
  assert.equal(saveSettings(refusing, defaultSettings(4)), false);
  assert.deepEqual(loadSettings(null, 4), defaultSettings(4));
  assert.equal(saveSettings(null, defaultSettings(4)), false);
  for (const text of ['{not json', 'null', '[1]', '"x"', JSON.stringify({ v: 2, workers: 2 })]) {
    assert.deepEqual(
      loadSettings(memoryStorage({ [SETTINGS_KEY]: text }), 4),
      defaultSettings(4),
      text,
    );
  }
});

test('each member out of range falls back to its default alone', () => {
  const saved = { v: 1, workers: 9, share: 0.3, pauseWhenHidden: 'yes', pauseOnBattery: true };
  const storage = memoryStorage({ [SETTINGS_KEY]: JSON.stringify(saved) });
  assert.deepEqual(loadSettings(storage, 4), {
    workers: 3,
    share: 1,
    pauseWhenHidden: false,
    pauseOnBattery: true,
  });
  const fine = memoryStorage({
    [SETTINGS_KEY]: JSON.stringify({ ...saved, workers: 4, share: 0.25 }),
  });
  assert.equal(loadSettings(fine, 4).workers, 4);
  assert.equal(loadSettings(fine, 4).share, 0.25);
  assert.equal(loadSettings(fine, undefined).workers, 4); // cores unknown: any count up to 1024
});

test('?workers=N is honoured, 1 to 1024; anything else is none', () => {
  assert.equal(workersFromQuery('?workers=3'), 3);
  assert.equal(workersFromQuery('?server=x&workers=5000'), MAX_WORKERS);
  for (const search of [
    '',
    '?workers=',
    '?workers=0',
    '?workers=-2',
    '?workers=1.5',
    '?workers=two',
    undefined,
  ]) {
    assert.equal(workersFromQuery(search), null, String(search));
  }
});

test('the workers control offers 1 to the cores, or up to what ?workers= asked for', () => {
  assert.deepEqual(workerChoices(4, 3), [1, 2, 3, 4]);
  assert.deepEqual(workerChoices(2, 6), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(workerChoices(undefined, 1), [1, 2]);
});
