import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PREVIEW_CHARS, preview } from '../../src/browsergrid/web/js/preview.js';

test('a result is shown as short JSON, never [object Object]', () => {
  assert.equal(preview(1.5372656826974733), '1.5372656826974733');
  assert.equal(preview({ hits: 785, samples: 1000 }), '{"hits":785,"samples":1000}');
  assert.equal(preview([1, 2, 3]), '[1,2,3]');
  assert.equal(preview('1'), '"1"');
  assert.equal(preview(null), 'null');
  assert.equal(preview(undefined), 'undefined');
});

test('a long result is clipped with an ellipsis', () => {
  const counts = Array.from({ length: 4096 }, (_, i) => i % 7);
  const shown = preview({ width: 64, height: 64, counts });
  assert.equal(shown.length, PREVIEW_CHARS + 1);
  assert.ok(shown.startsWith('{"width":64,"height":64,"counts":[0,1,2'));
  assert.ok(shown.endsWith('…'));
  assert.equal(preview('abcdef', 3), '"ab…');
});
