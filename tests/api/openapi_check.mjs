#!/usr/bin/env node
// Checks HTTP responses recorded by dagd's integration test against the OpenAPI 3.1
// document (docs/openapi.yaml).
//
//   node tests/api/openapi_check.mjs <openapi.yaml> <recorded.jsonl> [--require-all]
//
// Each non-blank line of recorded.jsonl is one response:
//   {"method":"GET","path":"/v1/devices/abc?limit=2","status":200,
//    "contentType":"application/json; charset=utf-8","body":"<raw body text>"}
// (contentType may be null or absent when the response had none).
//
// Per record: the operation is found by method and path template (the query is
// stripped; `{param}` matches one non-empty segment; a literal segment wins over a
// parameter when two templates match); its status must be documented; the media type
// must be one the response documents (parameters such as charset are ignored); a JSON
// body must parse and validate against the response schema (Ajv, JSON Schema 2020-12,
// formats checked), a YAML body must parse, a response documented without content
// must have an empty body. With --require-all, every operation also needs at least one
// recorded 2xx response.
//
// Before any record, the document itself is checked: it parses, says openapi 3.1.x,
// every operation has a unique operationId and responses, every local $ref resolves,
// every path parameter is declared, every security scheme named exists, schemas use
// only JSON Schema 2020-12 and OpenAPI keywords (no 3.0 `nullable`), and every schema
// compiles.
//
// Output: one `FAIL ...` line per failure, then `openapi_check: N passed, M failed`.
// Exit status: 0 when nothing failed, 1 on any failure, 2 on a usage error.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';

const addFormats = addFormatsModule.default ?? addFormatsModule;

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SPEC_ID = 'https://dagd.invalid/openapi.json';
const MAX_AJV_ERRORS = 10;
const BODY_EXCERPT = 300;

// JSON Schema 2020-12 keywords, and the few OpenAPI 3.1 adds to schemas.
const SCHEMA_KEYWORDS = new Set([
  '$schema', '$id', '$ref', '$anchor', '$dynamicRef', '$dynamicAnchor', '$defs', '$comment',
  '$vocabulary', 'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'dependentSchemas',
  'prefixItems', 'items', 'contains', 'properties', 'patternProperties',
  'additionalProperties', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties',
  'type', 'enum', 'const', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum',
  'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems',
  'uniqueItems', 'maxContains', 'minContains', 'maxProperties', 'minProperties', 'required',
  'dependentRequired', 'format', 'contentEncoding', 'contentMediaType', 'contentSchema',
  'title', 'description', 'default', 'deprecated', 'readOnly', 'writeOnly', 'examples',
  'discriminator', 'xml', 'externalDocs', 'example',
]);
const SCHEMA_TYPES = new Set(['null', 'boolean', 'object', 'array', 'number', 'string', 'integer']);
const SUBSCHEMA_ONE = ['not', 'if', 'then', 'else', 'items', 'contains', 'additionalProperties',
  'propertyNames', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'];
const SUBSCHEMA_LIST = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAP = ['properties', 'patternProperties', 'dependentSchemas', '$defs'];

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// ---- the document -------------------------------------------------------------------

function resolvePointer(root, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return undefined;
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node = root;
  for (const raw of ref.slice(2).split('/')) {
    let part;
    try {
      part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return undefined;
    }
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

// Follows $ref chains of non-schema objects (responses, parameters, headers, bodies).
function deref(spec, obj) {
  const seen = new Set();
  while (isObject(obj) && typeof obj.$ref === 'string') {
    if (seen.has(obj.$ref)) throw new Error(`$ref cycle at ${obj.$ref}`);
    seen.add(obj.$ref);
    const target = resolvePointer(spec, obj.$ref);
    if (target === undefined) throw new Error(`unresolved $ref ${obj.$ref}`);
    obj = target;
  }
  return obj;
}

function lintSchema(schema, where, problems, seen) {
  if (typeof schema === 'boolean') return;
  if (!isObject(schema)) {
    problems.push(`${where}: a schema must be an object or a boolean`);
    return;
  }
  if (seen.has(schema)) return;
  seen.add(schema);
  for (const key of Object.keys(schema)) {
    if (key === 'nullable') {
      problems.push(`${where}: "nullable" is OpenAPI 3.0; use type: [T, "null"]`);
    } else if (!SCHEMA_KEYWORDS.has(key) && !key.startsWith('x-')) {
      problems.push(`${where}: unknown schema keyword "${key}"`);
    }
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    for (const t of types) {
      if (!SCHEMA_TYPES.has(t)) problems.push(`${where}: unknown type ${JSON.stringify(t)}`);
    }
  }
  if (schema.additionalProperties === false && Array.isArray(schema.required)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    for (const name of schema.required) {
      if (!Object.hasOwn(props, name)) {
        problems.push(`${where}: "${name}" is required but not a property (additionalProperties is false)`);
      }
    }
  }
  for (const key of SUBSCHEMA_ONE) {
    if (schema[key] !== undefined) lintSchema(schema[key], `${where}/${key}`, problems, seen);
  }
  for (const key of SUBSCHEMA_LIST) {
    if (schema[key] === undefined) continue;
    if (!Array.isArray(schema[key])) {
      problems.push(`${where}/${key}: must be an array`);
      continue;
    }
    schema[key].forEach((s, i) => lintSchema(s, `${where}/${key}/${i}`, problems, seen));
  }
  for (const key of SUBSCHEMA_MAP) {
    if (schema[key] === undefined) continue;
    if (!isObject(schema[key])) {
      problems.push(`${where}/${key}: must be an object`);
      continue;
    }
    for (const [name, s] of Object.entries(schema[key])) {
      lintSchema(s, `${where}/${key}/${name}`, problems, seen);
    }
  }
}

function collectRefs(node, where, out) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => collectRefs(v, `${where}/${i}`, out));
  } else if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push({ ref: v, where });
      else collectRefs(v, `${where}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, out);
    }
  }
}

function templateSegments(template) {
  return template.split('/').slice(1).map((seg) => {
    if (!seg.includes('{')) return { literal: seg };
    const names = [];
    const source = seg.split(/(\{[^}]*\})/).map((part) => {
      if (part.startsWith('{') && part.endsWith('}')) {
        names.push(part.slice(1, -1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }).join('');
    return { regex: new RegExp(`^${source}$`), names };
  });
}

function mediaTypeOf(contentType) {
  if (typeof contentType !== 'string') return '';
  return contentType.split(';')[0].trim().toLowerCase();
}

function isJsonMedia(type) {
  return type === 'application/json' || type.endsWith('+json');
}

function isYamlMedia(type) {
  return type === 'application/yaml' || type === 'application/x-yaml' || type === 'text/yaml' ||
    type.endsWith('+yaml');
}

// Rewrites local refs so that a schema compiled on its own resolves them in the document.
function anchorRefs(node) {
  if (Array.isArray(node)) return node.map(anchorRefs);
  if (!isObject(node)) return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? SPEC_ID + v : anchorRefs(v);
  }
  return out;
}

// Loads, checks and compiles the document. Returns {operations, problems}.
export function loadSpec(specPath) {
  const problems = [];
  let text;
  try {
    text = readFileSync(specPath, 'utf8');
  } catch (e) {
    return { operations: [], problems: [`cannot read: ${e.message}`] };
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { operations: [], problems: doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`) };
  }
  const spec = doc.toJS({ maxAliasCount: 1000 });
  if (!isObject(spec)) return { operations: [], problems: ['the document is not a mapping'] };
  if (typeof spec.openapi !== 'string' || !/^3\.1\.\d+$/.test(spec.openapi)) {
    problems.push(`openapi must be 3.1.x, is ${JSON.stringify(spec.openapi)}`);
  }
  if (!isObject(spec.paths) || Object.keys(spec.paths).length === 0) {
    problems.push('no paths');
    return { operations: [], problems };
  }

  const refs = [];
  collectRefs(spec, '#', refs);
  for (const { ref, where } of refs) {
    if (!ref.startsWith('#')) problems.push(`${where}: only local $refs are supported: ${ref}`);
    else if (resolvePointer(spec, ref) === undefined) problems.push(`${where}: unresolved $ref ${ref}`);
  }
  if (problems.length > 0) return { operations: [], problems };

  const schemes = isObject(spec.components?.securitySchemes) ? spec.components.securitySchemes : {};
  const checkSecurity = (security, where) => {
    if (security === undefined) return;
    if (!Array.isArray(security)) {
      problems.push(`${where}: security must be an array`);
      return;
    }
    for (const requirement of security) {
      for (const name of Object.keys(requirement ?? {})) {
        if (!Object.hasOwn(schemes, name)) problems.push(`${where}: unknown security scheme "${name}"`);
      }
    }
  };
  checkSecurity(spec.security, '#/security');

  const linted = new Set();
  const schemaProblems = [];
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    lintSchema(schema, `#/components/schemas/${name}`, schemaProblems, linted);
  }

  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema({ $id: SPEC_ID, components: { schemas: spec.components?.schemas ?? {} } });
  const compile = (schema, where) => {
    lintSchema(schema, where, schemaProblems, linted);
    try {
      return ajv.compile(anchorRefs(schema));
    } catch (e) {
      problems.push(`${where}: schema does not compile: ${e.message}`);
      return null;
    }
  };
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    compile({ $ref: `#/components/schemas/${name}` }, `#/components/schemas/${name}`);
  }

  const operations = [];
  const operationIds = new Map();
  for (const [template, rawItem] of Object.entries(spec.paths)) {
    const pathWhere = `paths["${template}"]`;
    if (!template.startsWith('/')) problems.push(`${pathWhere}: a path must start with "/"`);
    let item;
    try {
      item = deref(spec, rawItem);
    } catch (e) {
      problems.push(`${pathWhere}: ${e.message}`);
      continue;
    }
    const segments = templateSegments(template);
    const templateParams = segments.flatMap((s) => s.names ?? []);
    const itemParams = Array.isArray(item.parameters) ? item.parameters : [];
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (op === undefined) continue;
      const where = `${method.toUpperCase()} ${template}`;
      if (typeof op.operationId !== 'string' || op.operationId === '') {
        problems.push(`${where}: no operationId`);
      } else if (operationIds.has(op.operationId)) {
        problems.push(`${where}: operationId "${op.operationId}" is used by ${operationIds.get(op.operationId)} too`);
      } else {
        operationIds.set(op.operationId, where);
      }
      checkSecurity(op.security, where);

      const params = [];
      for (const p of [...itemParams, ...(Array.isArray(op.parameters) ? op.parameters : [])]) {
        try {
          params.push(deref(spec, p));
        } catch (e) {
          problems.push(`${where}: parameter: ${e.message}`);
        }
      }
      for (const name of templateParams) {
        const p = params.find((q) => q.in === 'path' && q.name === name);
        if (!p) problems.push(`${where}: path parameter "${name}" is not declared`);
        else if (p.required !== true) problems.push(`${where}: path parameter "${name}" must be required`);
      }
      for (const p of params) {
        if (p.in === 'path' && !templateParams.includes(p.name)) {
          problems.push(`${where}: path parameter "${p.name}" is not in the path`);
        }
        if (p.schema !== undefined) compile(p.schema, `${where} parameter ${p.name}`);
      }
      if (op.requestBody !== undefined) {
        try {
          const body = deref(spec, op.requestBody);
          for (const [type, media] of Object.entries(body.content ?? {})) {
            if (media?.schema !== undefined) compile(media.schema, `${where} request ${type}`);
          }
        } catch (e) {
          problems.push(`${where}: requestBody: ${e.message}`);
        }
      }

      const responses = new Map();
      if (!isObject(op.responses) || Object.keys(op.responses).length === 0) {
        problems.push(`${where}: no responses`);
      }
      for (const [status, rawResponse] of Object.entries(op.responses ?? {})) {
        if (!/^([1-5][0-9][0-9]|[1-5]XX|default)$/.test(status)) {
          problems.push(`${where}: bad response key "${status}"`);
          continue;
        }
        let response;
        try {
          response = deref(spec, rawResponse);
        } catch (e) {
          problems.push(`${where} ${status}: ${e.message}`);
          continue;
        }
        if (typeof response.description !== 'string') {
          problems.push(`${where} ${status}: a response needs a description`);
        }
        for (const [name, header] of Object.entries(response.headers ?? {})) {
          try {
            const h = deref(spec, header);
            if (h.schema !== undefined) compile(h.schema, `${where} ${status} header ${name}`);
          } catch (e) {
            problems.push(`${where} ${status} header ${name}: ${e.message}`);
          }
        }
        const media = new Map();
        for (const [type, m] of Object.entries(response.content ?? {})) {
          const key = type.toLowerCase();
          const validate = m?.schema !== undefined ? compile(m.schema, `${where} ${status} ${type}`) : null;
          media.set(key, { type: key, validate });
        }
        responses.set(status, media);
      }
      operations.push({
        method: method.toUpperCase(),
        template,
        segments,
        operationId: op.operationId,
        responses,
      });
    }
  }
  problems.push(...schemaProblems);
  if (operations.length === 0) problems.push('no operations');
  return { operations, problems };
}

// ---- matching ---------------------------------------------------------------------

function matchTemplate(segments, pathSegments) {
  if (segments.length !== pathSegments.length) return null;
  const rank = [];
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.literal !== undefined) {
      if (s.literal !== pathSegments[i]) return null;
      rank.push(0);
    } else {
      if (pathSegments[i] === '' || !s.regex.test(pathSegments[i])) return null;
      rank.push(1);
    }
  }
  return rank;
}

function compareRank(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

// The operation for (method, path), or {error}.
export function findOperation(operations, method, rawPath) {
  const path = rawPath.split(/[?#]/, 1)[0];
  const pathSegments = path.split('/').slice(1);
  const matches = [];
  for (const op of operations) {
    const rank = matchTemplate(op.segments, pathSegments);
    if (rank) matches.push({ op, rank });
  }
  if (matches.length === 0) return { error: `no path template matches ${path}` };
  matches.sort((a, b) => compareRank(a.rank, b.rank));
  const best = matches.filter((m) => compareRank(m.rank, matches[0].rank) === 0);
  const found = best.find((m) => m.op.method === method.toUpperCase());
  if (!found) {
    const allowed = best.map((m) => m.op.method).join(', ');
    return { error: `${method} is not documented for ${best[0].op.template} (documented: ${allowed})` };
  }
  return { op: found.op };
}

function responseFor(op, status) {
  const s = String(status);
  return op.responses.get(s) ?? op.responses.get(`${s[0]}XX`) ?? op.responses.get('default');
}

function mediaFor(media, type) {
  if (media.has(type)) return media.get(type);
  const [major] = type.split('/');
  return media.get(`${major}/*`) ?? media.get('*/*');
}

function formatAjvErrors(errors) {
  const shown = errors.slice(0, MAX_AJV_ERRORS).map((e) => {
    const params = Object.keys(e.params ?? {}).length > 0 ? ` ${JSON.stringify(e.params)}` : '';
    return `body${e.instancePath} ${e.message}${params} [${e.schemaPath}]`;
  });
  if (errors.length > MAX_AJV_ERRORS) shown.push(`... ${errors.length - MAX_AJV_ERRORS} more`);
  return shown.join('; ');
}

// Checks one record; returns {op, problem} (problem null when it passed).
export function checkRecord(operations, record) {
  const found = findOperation(operations, record.method, record.path);
  if (found.error) return { op: null, problem: found.error };
  const { op } = found;
  const media = responseFor(op, record.status);
  if (!media) {
    const documented = [...op.responses.keys()].join(', ');
    return { op, problem: `status ${record.status} is not documented for ${op.operationId} (documented: ${documented})` };
  }
  const body = record.body ?? '';
  if (media.size === 0) {
    if (body !== '') return { op, problem: `status ${record.status} documents no body, got ${body.length} characters` };
    return { op, problem: null };
  }
  const type = mediaTypeOf(record.contentType);
  if (type === '') return { op, problem: 'no Content-Type' };
  const entry = mediaFor(media, type);
  if (!entry) {
    return { op, problem: `Content-Type ${type} is not documented (documented: ${[...media.keys()].join(', ')})` };
  }
  let value = body;
  if (isJsonMedia(entry.type)) {
    try {
      value = JSON.parse(body);
    } catch (e) {
      return { op, problem: `the body is not JSON: ${e.message}` };
    }
  } else if (isYamlMedia(entry.type)) {
    const doc = YAML.parseDocument(body);
    if (doc.errors.length > 0) return { op, problem: `the body is not YAML: ${doc.errors[0].message.split('\n')[0]}` };
  }
  if (entry.validate && !entry.validate(value)) {
    return { op, problem: `the body does not match the schema: ${formatAjvErrors(entry.validate.errors ?? [])}` };
  }
  return { op, problem: null };
}

function recordError(record) {
  if (!isObject(record)) return 'a record must be a JSON object';
  if (typeof record.method !== 'string' || !/^[A-Za-z]+$/.test(record.method)) return 'bad "method"';
  if (typeof record.path !== 'string' || !record.path.startsWith('/')) return 'bad "path" (must start with "/")';
  if (!Number.isInteger(record.status) || record.status < 100 || record.status > 599) return 'bad "status"';
  if (record.contentType !== undefined && record.contentType !== null && typeof record.contentType !== 'string') {
    return 'bad "contentType"';
  }
  if (typeof record.body !== 'string') return 'bad "body" (must be a string)';
  return null;
}

function describe(record) {
  const shown = { ...record };
  if (typeof shown.body === 'string' && shown.body.length > BODY_EXCERPT) {
    shown.body = `${shown.body.slice(0, BODY_EXCERPT)}...(${record.body.length} characters)`;
  }
  return JSON.stringify(shown);
}

// ---- main ---------------------------------------------------------------------------

function main(argv) {
  const flags = argv.filter((a) => a.startsWith('--'));
  const positional = argv.filter((a) => !a.startsWith('--'));
  const unknown = flags.filter((f) => f !== '--require-all');
  if (positional.length !== 2 || unknown.length > 0) {
    process.stderr.write('usage: node tests/api/openapi_check.mjs <openapi.yaml> <recorded.jsonl> [--require-all]\n');
    return 2;
  }
  const [specPath, recordsPath] = positional;
  const requireAll = flags.includes('--require-all');
  let passed = 0;
  let failed = 0;
  const fail = (line) => {
    failed++;
    console.log(`FAIL ${line}`);
  };

  const { operations, problems } = loadSpec(specPath);
  if (problems.length > 0) {
    for (const p of problems) fail(`spec ${specPath}: ${p}`);
    console.log(`openapi_check: ${passed} passed, ${failed} failed`);
    return 1;
  }

  let text;
  try {
    text = readFileSync(recordsPath, 'utf8');
  } catch (e) {
    fail(`${recordsPath}: cannot read: ${e.message}`);
    console.log(`openapi_check: ${passed} passed, ${failed} failed`);
    return 1;
  }
  const covered = new Set();
  let records = 0;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    records++;
    const where = `${recordsPath}:${i + 1}`;
    let record;
    try {
      record = JSON.parse(line);
    } catch (e) {
      fail(`${where}: not JSON: ${e.message}`);
      return;
    }
    const bad = recordError(record);
    if (bad) {
      fail(`${where}: ${bad}: ${line.slice(0, BODY_EXCERPT)}`);
      return;
    }
    const { op, problem } = checkRecord(operations, record);
    if (op && record.status >= 200 && record.status < 300) covered.add(op.operationId);
    const label = `${record.method} ${record.path} -> ${record.status}${op ? ` (${op.operationId})` : ''}`;
    if (problem) fail(`${where}: ${label}: ${problem}; record ${describe(record)}`);
    else passed++;
  });
  if (records === 0) fail(`${recordsPath}: no records`);

  const missing = operations.filter((op) => !covered.has(op.operationId));
  if (requireAll) {
    for (const op of missing) {
      fail(`${recordsPath}: ${op.operationId} (${op.method} ${op.template}) has no recorded 2xx response`);
    }
  }
  console.log(`openapi_check: ${records} records, ${operations.length - missing.length}/${operations.length} operations with a 2xx response`);
  console.log(`openapi_check: ${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
