// Checks web/js/protocol.js against the shared frame fixtures and docs/protocol.md.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import {
  capacityMessage,
  handBackMessage,
  helloMessage,
  holdsMessage,
  PROTOCOL_VERSION,
  parseServerMessage,
  resultMessage,
  resultsMessage,
  taskErrorMessage,
} from '../../src/browsergrid/web/js/protocol.js';

const fixtures = JSON.parse(
  await readFile(new URL('../fixtures/messages.json', import.meta.url), 'utf8'),
);
const serverToWorker = fixtures.server_to_worker;

test('protocol version is 1', () => {
  assert.equal(PROTOCOL_VERSION, 1);
});

for (const { name, frame, decodes_to } of serverToWorker.valid) {
  test(`valid server frame decodes: ${name}`, () => {
    assert.deepEqual(parseServerMessage(frame), { ok: true, message: decodes_to });
  });
}

for (const { name, frame } of serverToWorker.ignored) {
  test(`unknown server frame is ignored: ${name}`, () => {
    assert.deepEqual(parseServerMessage(frame), { ok: true, message: null });
  });
}

for (const { name, frame, error_code } of serverToWorker.invalid) {
  test(`invalid server frame is refused: ${name}`, () => {
    const parsed = parseServerMessage(frame);
    assert.equal(parsed.ok, false);
    assert.equal(parsed.code, error_code);
    assert.equal(typeof parsed.error, 'string');
  });
}

test('more malformed frames never throw and get the right code', () => {
  const cases = [
    ['null', 'bad_json'],
    ['"task"', 'bad_json'],
    ['{"type":7}', 'bad_message'],
    ['{"type":"task","op":"x","task_id":true}', 'bad_message'],
    ['{"type":"task","op":"x","task_id":1.5}', 'bad_message'],
    ['{"type":"task","op":3,"task_id":1}', 'bad_message'],
    ['{"type":"welcome","protocol":1,"server":"s","limits":{}}', 'bad_message'],
    ['{"type":"error","message":"no code"}', 'bad_message'],
    ['{"type":"error","code":"bad_json"}', 'bad_message'],
    ['{"type":"tasks","tasks":null}', 'bad_message'],
    ['{"type":"tasks","tasks":"task"}', 'bad_message'],
    ['{"type":"tasks","tasks":[null]}', 'bad_message'],
    ['{"type":"tasks","tasks":[[]]}', 'bad_message'],
    ['{"type":"tasks","tasks":[{"type":"task","op":3,"task_id":1}]}', 'bad_message'],
    ['{"type":"tasks","tasks":[{"type":"task","op":"x","task_id":1.5}]}', 'bad_message'],
    ['{"type":"tasks","tasks":[{"type":"tasks","op":"x","task_id":1}]}', 'bad_message'],
    ['{"type":"cancel","task_id":null}', 'bad_message'],
    ['{"type":"cancel","task_id":[1]}', 'bad_message'],
  ];
  for (const [frame, code] of cases) assert.equal(parseServerMessage(frame).code, code, frame);
});

test('a bad element of tasks names its position', () => {
  const parsed = parseServerMessage(
    '{"type":"tasks","tasks":[{"type":"task","op":"x","task_id":1},{"type":"task","task_id":2}]}',
  );
  assert.equal(parsed.ok, false);
  assert.match(parsed.error, /element 1/);
});

test('every element of tasks is normalised like a task frame', () => {
  const { message } = parseServerMessage(
    '{"type":"tasks","tasks":[{"type":"task","op":"o","task_id":2,"constructor":1},{"type":"task","op":"p","task_id":"b"}]}',
  );
  assert.deepEqual(message, {
    type: 'tasks',
    tasks: [
      { type: 'task', task_id: 2, op: 'o', args: { constructor: 1 } },
      { type: 'task', task_id: 'b', op: 'p', args: {} },
    ],
  });
});

test('task arguments named like prototype members stay plain arguments', () => {
  const { message } = parseServerMessage(
    '{"type":"task","op":"o","task_id":2,"constructor":1,"x":[1]}',
  );
  assert.deepEqual(message, {
    type: 'task',
    task_id: 2,
    op: 'o',
    args: { constructor: 1, x: [1] },
  });
});

test('a type named like a prototype member is ignored, not dispatched', () => {
  assert.deepEqual(parseServerMessage('{"type":"toString"}'), { ok: true, message: null });
});

test('helloMessage builds the hello frame; prefetch defaults to 1, as protocol.md says', () => {
  const frame = helloMessage({
    agent: 'Mozilla/5.0 test',
    ops: ['repeat_multiply'],
    concurrency: 3,
  });
  assert.equal(typeof frame, 'string');
  assert.deepEqual(JSON.parse(frame), {
    type: 'hello',
    protocol: 1,
    agent: 'Mozilla/5.0 test',
    ops: ['repeat_multiply'],
    concurrency: 3,
    prefetch: 1,
  });
});

test('helloMessage carries prefetch', () => {
  for (const prefetch of [0, 3, 1024]) {
    const hello = JSON.parse(
      helloMessage({ agent: 'UA', ops: ['repeat_multiply'], concurrency: 3, prefetch }),
    );
    assert.equal(hello.prefetch, prefetch);
  }
});

test('helloMessage caps agent at 512 characters', () => {
  const { agent } = JSON.parse(
    helloMessage({ agent: 'a'.repeat(600), ops: ['repeat_multiply'], concurrency: 1 }),
  );
  assert.equal(agent.length, 512);
});

test('resultMessage builds the exercise result frame and echoes task_id as given', () => {
  const frame = resultMessage({
    task_id: 1,
    result: 1.5372656826974733,
    duration_ms: 3,
    agent: 'UA',
  });
  assert.deepEqual(JSON.parse(frame), {
    type: 'result',
    task_id: 1,
    result: 1.5372656826974733,
    duration_ms: 3,
    agent: 'UA',
  });
  assert.deepEqual(JSON.parse(resultMessage({ task_id: 't-9', result: [1, 2], duration_ms: 0 })), {
    type: 'result',
    task_id: 't-9',
    result: [1, 2],
    duration_ms: 0,
  });
});

test('resultsMessage builds one results frame and keeps only the three members of each result', () => {
  const frame = resultsMessage({
    results: [
      { task_id: 1, result: 2.5, duration_ms: 3, extra: 'dropped' },
      { task_id: 't-2', result: null, duration_ms: 0 },
    ],
    agent: 'UA',
  });
  assert.deepEqual(JSON.parse(frame), {
    type: 'results',
    results: [
      { task_id: 1, result: 2.5, duration_ms: 3 },
      { task_id: 't-2', result: null, duration_ms: 0 },
    ],
    agent: 'UA',
  });
  const bare = JSON.parse(
    resultsMessage({ results: [{ task_id: 5, result: [1], duration_ms: 1 }] }),
  );
  assert.deepEqual(bare, {
    type: 'results',
    results: [{ task_id: 5, result: [1], duration_ms: 1 }],
  });
  assert.equal(
    JSON.parse(resultsMessage({ results: [], agent: 'a'.repeat(600) })).agent.length,
    512,
  );
});

test('taskErrorMessage builds the task error frame', () => {
  const frame = taskErrorMessage({ task_id: 7, message: 'RangeError: invalid array length' });
  assert.deepEqual(JSON.parse(frame), {
    type: 'error',
    task_id: 7,
    message: 'RangeError: invalid array length',
  });
});

test('built frames match the shapes of the worker_to_server fixtures', () => {
  const byName = Object.fromEntries(
    fixtures.worker_to_server.valid.map((f) => [f.name, f.decodes_to]),
  );
  const { type, ...result } = byName['exercise result'];
  assert.deepEqual(JSON.parse(resultMessage(result)), { type, ...result });
  const {
    type: helloType,
    protocol,
    cold: none,
    holds: nothing,
    environments: absent,
    ...hello
  } = byName.hello;
  assert.deepEqual([none, nothing], [[], []]); // an empty `cold` or `holds` is left out
  assert.equal(absent, null); // a tab sends no `environments`: native false, new true
  assert.deepEqual(JSON.parse(helloMessage(hello)), { type: helloType, protocol, ...hello });
  const {
    type: prefetchType,
    protocol: prefetchProtocol,
    cold: _,
    holds: __,
    environments: _____,
    ...prefetched
  } = byName['hello with prefetch'];
  assert.deepEqual(JSON.parse(helloMessage(prefetched)), {
    type: prefetchType,
    protocol: prefetchProtocol,
    ...prefetched,
  });
  const {
    type: coldType,
    protocol: coldProtocol,
    holds: ___,
    environments: ______,
    ...cold
  } = byName['hello with a cold op'];
  assert.deepEqual(JSON.parse(helloMessage(cold)), {
    type: coldType,
    protocol: coldProtocol,
    ...cold,
  });
  const {
    type: heldType,
    protocol: heldProtocol,
    cold: ____,
    environments: _______,
    ...held
  } = byName['hello with the blobs it holds'];
  assert.deepEqual(JSON.parse(helloMessage(held)), {
    type: heldType,
    protocol: heldProtocol,
    ...held,
  });
  const { type: holdsType, ...holds } = byName.holds;
  assert.deepEqual(JSON.parse(holdsMessage(holds)), { type: holdsType, ...holds });
  const { type: errorType, ...taskError } = byName['task error'];
  assert.deepEqual(JSON.parse(taskErrorMessage(taskError)), { type: errorType, ...taskError });
  const { type: resultsType, ...results } = byName.results;
  assert.deepEqual(JSON.parse(resultsMessage(results)), { type: resultsType, ...results });
});

test('built frames are byte for byte the fixture frames the Python encoders make', () => {
  const frameOf = Object.fromEntries(fixtures.worker_to_server.valid.map((f) => [f.name, f.frame]));
  assert.equal(capacityMessage({ concurrency: 0 }), frameOf['capacity: paused']);
  assert.equal(
    capacityMessage({ concurrency: 3, prefetch: 3, share: 0.5 }),
    frameOf['capacity with prefetch and share'],
  );
  assert.equal(handBackMessage({ task_ids: [12, 13] }), frameOf.hand_back);
  assert.equal(
    helloMessage({
      agent: 'browsergrid-python/0.1.0',
      ops: ['repeat_multiply'],
      concurrency: 2,
      prefetch: 4,
    }),
    frameOf['hello with prefetch'],
  );
  assert.equal(
    taskErrorMessage({ task_id: 7, message: 'RangeError: invalid array length' }),
    frameOf['task error'],
  );
});
