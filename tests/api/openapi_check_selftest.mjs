#!/usr/bin/env node
// Proves that openapi_check.mjs passes good responses and fails bad ones: it runs the
// checker on fixture records against docs/openapi.yaml (and on small documents made
// here) and compares its exit status and output with what each case expects.
//
//   node tests/api/openapi_check_selftest.mjs
//
// Exit status 0 when every case behaved as expected, 1 otherwise.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const checker = join(here, 'openapi_check.mjs');
const spec = join(root, 'docs', 'openapi.yaml');
const goodPath = join(here, 'fixtures', 'good.jsonl');
const good = readFileSync(goodPath, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const work = mkdtempSync(join(tmpdir(), 'openapi-check-selftest-'));

let passed = 0;
let failed = 0;
let fileCount = 0;

function file(name, text) {
  const path = join(work, `${fileCount++}-${name}`);
  writeFileSync(path, text);
  return path;
}

function records(list) {
  return file('records.jsonl', list.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
}

// The first good record of an operation, found by method and path prefix and status.
function goodRecord(method, pathStart, status) {
  const r = good.find((x) => x.method === method && x.path.startsWith(pathStart) && x.status === status);
  if (!r) throw new Error(`no good record for ${method} ${pathStart} ${status}`);
  return structuredClone(r);
}

function withBody(record, mutate) {
  const body = JSON.parse(record.body);
  mutate(body);
  return { ...record, body: JSON.stringify(body) };
}

function check(name, args, { status, includes = [], summary }) {
  const run = spawnSync(process.execPath, [checker, ...args], { encoding: 'utf8' });
  const output = `${run.stdout}${run.stderr}`;
  const problems = [];
  if (run.status !== status) problems.push(`exit status ${run.status}, expected ${status}`);
  for (const text of includes) {
    if (!output.includes(text)) problems.push(`output lacks ${JSON.stringify(text)}`);
  }
  if (summary !== undefined && !output.includes(`\nopenapi_check: ${summary}\n`) &&
      !output.startsWith(`openapi_check: ${summary}\n`)) {
    problems.push(`no summary line "openapi_check: ${summary}"`);
  }
  if (problems.length === 0) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}: ${problems.join('; ')}`);
    for (const line of output.trimEnd().split('\n')) console.log(`    | ${line}`);
  }
}

// A record alone in its file must fail, and be the only failure.
function expectRecordFails(name, record, ...includes) {
  check(name, [spec, records([record])], { status: 1, includes: ['FAIL ', ...includes], summary: '0 passed, 1 failed' });
}

try {
  // ---- good records pass ------------------------------------------------------------
  check('every good record passes, every operation covered', [spec, goodPath, '--require-all'],
    { status: 0, summary: `${good.length} passed, 0 failed`, includes: ['23/23 operations'] });
  check('good records pass without --require-all too', [spec, goodPath],
    { status: 0, summary: `${good.length} passed, 0 failed` });
  check('--require-all fails on operations without a 2xx record',
    [spec, records(good.filter((r) => r.path === '/healthz')), '--require-all'],
    { status: 1, includes: ['getDevice (GET /v1/devices/{deviceId}) has no recorded 2xx response'], summary: '1 passed, 22 failed' });
  check('an error-status record does not count as coverage',
    [spec, records([goodRecord('GET', '/v1/accounts/', 404)]), '--require-all'],
    { status: 1, includes: ['getAccount (GET /v1/accounts/{accountId}) has no recorded 2xx response'] });

  // ---- bad records fail -------------------------------------------------------------
  const device = goodRecord('GET', '/v1/devices/dag-1', 200);
  expectRecordFails('a wrong type fails', withBody(device, (b) => { b.state.power = 1; }),
    'body/state/power must be', '(getDevice)');
  expectRecordFails('a value outside an enum fails', withBody(device, (b) => { b.userState.state = 'unknown'; }),
    'body/userState/state must be equal to one of the allowed values');
  expectRecordFails('an extra property fails', withBody(device, (b) => { b.owner = 'alice'; }),
    'must NOT have additional properties', '"additionalProperty":"owner"');
  expectRecordFails('an extra property in a nested object fails', withBody(device, (b) => { b.connection.since = 1; }),
    'body/connection must NOT have additional properties');
  expectRecordFails('a missing required property fails',
    withBody(goodRecord('GET', '/v1/devices/dag-1/uptime', 200), (b) => { delete b.ongoing; }),
    "must have required property 'ongoing'");
  expectRecordFails('null where null is not allowed fails', withBody(device, (b) => { b.name = null; }),
    'body/name must be string');
  expectRecordFails('a time without milliseconds fails',
    withBody(goodRecord('GET', '/v1/accounts/', 200), (b) => { b.createdAt = '2026-11-27T05:00:00Z'; }),
    'body/createdAt must match pattern');
  expectRecordFails('an availability over 100 fails',
    withBody(goodRecord('GET', '/v1/devices/dag-1/uptime', 200), (b) => { b.availability = 100.5; }),
    'body/availability must be <= 100');
  expectRecordFails('a fractional count fails',
    withBody(goodRecord('GET', '/v1/devices/dag-1/uptime', 200), (b) => { b.outageCount = 1.5; }),
    'body/outageCount must be integer');
  expectRecordFails('an event id as a number fails',
    withBody(goodRecord('GET', '/v1/devices/dag-1/events', 200), (b) => { b.events[0].id = 42; }),
    'body/events/0/id must be string');
  expectRecordFails('a list item of the wrong shape fails',
    { ...goodRecord('GET', '/v1/accounts/', 200), path: good.find((r) => r.path.endsWith('/devices')).path,
      body: JSON.stringify([{ deviceId: 'dag-1' }]) },
    "body/0 must have required property 'name'");
  expectRecordFails('an error with the wrong code for its status fails',
    { ...goodRecord('GET', '/v1/accounts/', 404), body: JSON.stringify({ code: 'bad_request', message: 'x' }) },
    'body/code must be equal to constant');
  expectRecordFails('an error code outside the table fails',
    { ...goodRecord('GET', '/v1/accounts/', 404), body: JSON.stringify({ code: 'nope', message: 'x' }) },
    'body/code must be equal to one of the allowed values');
  expectRecordFails('an undocumented status fails', { ...device, status: 418 },
    'status 418 is not documented for getDevice');
  expectRecordFails('a 429 on an operation other than login fails',
    { ...device, status: 429, body: JSON.stringify({ code: 'rate_limited', message: 'x' }) },
    'status 429 is not documented for getDevice');
  expectRecordFails('an unknown path fails', { ...device, path: '/v1/nope' },
    'no path template matches /v1/nope');
  expectRecordFails('an empty path segment does not match a parameter',
    { ...goodRecord('GET', '/v1/devices/dag-1/events', 200), path: '/v1/devices//events' },
    'no path template matches /v1/devices//events');
  expectRecordFails('a trailing slash does not match', { ...device, path: '/v1/devices/dag-1/' },
    'no path template matches');
  expectRecordFails('an undocumented method fails', { ...device, method: 'DELETE' },
    'DELETE is not documented for /v1/devices/{deviceId} (documented: GET, PATCH)');
  expectRecordFails('a wrong content type fails', { ...device, contentType: 'text/plain; charset=utf-8' },
    'Content-Type text/plain is not documented (documented: application/json)');
  expectRecordFails('a missing content type fails', { ...device, contentType: null }, 'no Content-Type');
  expectRecordFails('a body that is not JSON fails', { ...device, body: '{"deviceId":' }, 'the body is not JSON');
  expectRecordFails('a 204 with a body fails',
    { ...goodRecord('DELETE', '/v1/accounts/', 204), contentType: 'application/json', body: '{}' },
    'status 204 documents no body');
  expectRecordFails('the YAML document that does not parse fails',
    { ...goodRecord('GET', '/v1/openapi.yaml', 200), body: 'openapi: [3.1.0\n' }, 'the body is not YAML');
  expectRecordFails('JSON for the verification page fails',
    { ...goodRecord('GET', '/v1/verify', 404), contentType: 'application/json', body: '{"code":"not_found","message":"x"}' },
    'Content-Type application/json is not documented (documented: text/html)');
  expectRecordFails('a malformed record fails', { method: 'GET', path: '/healthz', body: '' }, 'bad "status"');
  check('a line that is not JSON fails', [spec, records(['{"method":'])], { status: 1, includes: ['not JSON'] });
  check('an empty record file fails', [spec, file('empty.jsonl', '\n')],
    { status: 1, includes: ['no records'], summary: '0 passed, 1 failed' });
  check('failures and passes are counted together',
    [spec, records([device, { ...device, status: 418 }, good[0]])],
    { status: 1, summary: '2 passed, 1 failed' });

  // ---- the document itself ----------------------------------------------------------
  const tiny = (paths, schemas = '') => `openapi: 3.1.0
info: {title: tiny, version: '1'}
paths:
${paths}
components:
  schemas:
    Any: {type: object}
${schemas}`;
  const okResponse = `      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Any'}`;
  const thing = { method: 'GET', status: 200, contentType: 'application/json' };

  const routing = file('routing.yaml', tiny(`  /things/{id}:
    get:
      operationId: getThing
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object, required: [id], additionalProperties: false, properties: {id: {type: integer}}}
  /things/special:
    get:
      operationId: getSpecialThing
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object, required: [special], additionalProperties: false, properties: {special: {type: boolean}}}
  /things/{id}/parts/{partId}:
    get:
      operationId: getPart
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: partId, in: path, required: true, schema: {type: string}}
      responses:
        '200':
          description: ok
          content:
            application/*:
              schema: {type: string}
  /things/special/parts/{partId}:
    get:
      operationId: getSpecialPart
      parameters: [{name: partId, in: path, required: true, schema: {type: string}}]
      responses:
        '204':
          description: nothing`));
  check('a literal segment wins over a parameter', [routing, records([
    { ...thing, path: '/things/special', body: '{"special":true}' },
    { ...thing, path: '/things/7?x=1', body: '{"id":7}' },
    { ...thing, path: '/things/7/parts/3', contentType: 'application/octet-stream', body: 'xyz' },
    { ...thing, path: '/things/special/parts/3', status: 204, contentType: null, body: '' },
  ]), '--require-all'], { status: 0, summary: '4 passed, 0 failed' });
  check('the literal template is the one validated', [routing, records([
    { ...thing, path: '/things/special', body: '{"id":7}' },
  ])], { status: 1, includes: ['(getSpecialThing)', "must have required property 'special'"], summary: '0 passed, 1 failed' });

  check('an operation without operationId fails the document', [file('noid.yaml', tiny(`  /a:
    get:
${okResponse}`)), records([good[0]])], { status: 1, includes: ['GET /a: no operationId'] });
  check('a duplicate operationId fails the document', [file('dup.yaml', tiny(`  /a:
    get:
      operationId: same
${okResponse}
  /b:
    get:
      operationId: same
${okResponse}`)), records([good[0]])], { status: 1, includes: ['operationId "same" is used by GET /a too'] });
  check('an OpenAPI 3.0 document fails', [file('v30.yaml', tiny(`  /a:
    get:
      operationId: a
${okResponse}`).replace('openapi: 3.1.0', 'openapi: 3.0.3')), records([good[0]])],
  { status: 1, includes: ['openapi must be 3.1.x'] });
  check('nullable (3.0) fails the document', [file('nullable.yaml', tiny(`  /a:
    get:
      operationId: a
${okResponse}`, '    N: {type: string, nullable: true}\n')), records([good[0]])],
  { status: 1, includes: ['"nullable" is OpenAPI 3.0'] });
  check('an unknown schema keyword fails the document', [file('typo.yaml', tiny(`  /a:
    get:
      operationId: a
${okResponse}`, '    N: {type: string, maxlength: 3}\n')), records([good[0]])],
  { status: 1, includes: ['unknown schema keyword "maxlength"'] });
  check('an unresolved $ref fails the document', [file('ref.yaml', tiny(`  /a:
    get:
      operationId: a
      responses:
        '200': {$ref: '#/components/responses/Missing'}`)), records([good[0]])],
  { status: 1, includes: ['unresolved $ref #/components/responses/Missing'] });
  check('an undeclared path parameter fails the document', [file('param.yaml', tiny(`  /a/{id}:
    get:
      operationId: a
${okResponse}`)), records([good[0]])], { status: 1, includes: ['path parameter "id" is not declared'] });
  check('a document that is not YAML fails', [file('broken.yaml', 'openapi: [3.1.0\n'), records([good[0]])],
    { status: 1, includes: ['YAML:'] });
  check('a missing document fails', [join(work, 'absent.yaml'), records([good[0]])],
    { status: 1, includes: ['cannot read'] });

  // ---- usage ------------------------------------------------------------------------
  check('no arguments is a usage error', [], { status: 2, includes: ['usage:'] });
  check('an unknown flag is a usage error', [spec, goodPath, '--all'], { status: 2, includes: ['usage:'] });
} catch (e) {
  failed++;
  console.log(`not ok - the self-test itself: ${e.stack}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`openapi_check_selftest: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
