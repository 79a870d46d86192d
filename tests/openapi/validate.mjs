#!/usr/bin/env node
// The portal API's OpenAPI document (docs/openapi.json) and wwsfd's answers
// against it.
//
//   node validate.mjs document DOC
//       DOC against the official OpenAPI 3.1 schemas, then the checks the
//       schemas cannot make: every $ref resolves inside DOC, every schema
//       compiles (Ajv 2020, strict), every operation has a unique
//       operationId, every response but 204 has an application/json schema
//       and 204 has no content, every path parameter is declared, every
//       operation behind the API key lists 401 and 429, every {id}
//       operation 404.
//   node validate.mjs answers DOC RECORDS.jsonl
//       each line {"method", "path" (the path template), "status", "body"}:
//       the body against the schema DOC gives that operation and status.
//       An operation or status DOC does not declare fails too.
//   node validate.mjs routes DOC
//       "METHOD PATH" of every operation, sorted.
//
// Exit 0 when everything holds, 1 when something does not (each failure on
// stderr), 2 on a usage error.

import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020Module from "ajv/dist/2020.js";

const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;

// The base URI the document is known by to Ajv; its schemas' "#/components/..."
// references resolve against it.
const DOC_ID = "https://wwsf.invalid/openapi.json";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const JSON_TYPE = "application/json";
// The fields of an OpenAPI 3.1 document's root ("externalDocs" is a schema
// annotation too, added with those).
const OPENAPI_FIELDS = ["openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
  "security", "tags"];

const USAGE = `usage: node validate.mjs document DOC
       node validate.mjs answers DOC RECORDS.jsonl
       node validate.mjs routes DOC
`;

class Failure extends Error {}

function readJson(file, what) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Failure(`${file}: cannot read ${what}: ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Failure(`${file}: ${what} is not JSON: ${e.message}`);
  }
}

function escapeToken(token) {
  return String(token).replaceAll("~", "~0").replaceAll("/", "~1");
}

function pointer(parts) {
  return "#" + parts.map((p) => "/" + escapeToken(p)).join("");
}

// The value at a local reference ("#/a/b~1c"), or undefined.
function resolvePointer(doc, ref) {
  if (ref === "#") return doc;
  if (!ref.startsWith("#/")) return undefined;
  let node = doc;
  for (const raw of ref.slice(2).split("/")) {
    let token;
    try {
      token = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    } catch {
      return undefined;
    }
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, token)) return undefined;
    node = node[token];
  }
  return node;
}

// An object that may be a Reference Object, followed to its target:
// {node, at} with `at` the pointer of the object finally reached.
function follow(doc, node, at) {
  const seen = new Set();
  while (node && typeof node === "object" && typeof node.$ref === "string") {
    if (seen.has(node.$ref)) throw new Failure(`${at}: $ref loop through ${node.$ref}`);
    seen.add(node.$ref);
    at = node.$ref;
    node = resolvePointer(doc, node.$ref);
  }
  return { node, at };
}

function operations(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (item && typeof item === "object" && item[method]) {
        out.push({ path, method, op: item[method], item });
      }
    }
  }
  return out;
}

function makeAjv(doc) {
  // Strict, but for strictRequired: a "required" in a subschema of "not" or
  // "oneOf" names members the subschema itself does not define.
  const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true, allowUnionTypes: true });
  // The OpenAPI dialect's annotations besides JSON Schema 2020-12's, and the
  // document's own fields: Ajv compiles the document's root when it resolves
  // a reference into it, and takes these for keywords there.
  ajv.addVocabulary(["example", "xml", "externalDocs", "discriminator"]);
  ajv.addVocabulary(OPENAPI_FIELDS.concat(Object.keys(doc).filter((k) => k.startsWith("x-"))));
  ajv.addSchema(doc, DOC_ID);
  const compiled = new Map();
  return {
    // The validator of the schema at `at` (a pointer into the document).
    compile(at) {
      if (!compiled.has(at)) compiled.set(at, ajv.compile({ $ref: DOC_ID + at }));
      return compiled.get(at);
    },
  };
}

function ajvErrors(errors) {
  return (errors ?? []).map((e) => {
    const params = Object.keys(e.params ?? {}).length ? " " + JSON.stringify(e.params) : "";
    return `${e.instancePath || "/"} ${e.message}${params} (${e.keyword})`;
  });
}

// Every schema of the document that Ajv should compile: components.schemas,
// and the schema of every parameter, header and media type but a bare $ref.
function schemaLocations(doc) {
  const out = [];
  for (const name of Object.keys(doc.components?.schemas ?? {})) out.push(pointer(["components", "schemas", name]));
  const visit = (node, parts) => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) {
      node.forEach((v, i) => visit(v, parts.concat(i)));
      return;
    }
    for (const [k, v] of Object.entries(node)) {
      if (k === "schema" && v && typeof v === "object" && !Array.isArray(v)) {
        // A bare reference: its target is compiled on its own.
        if (!(Object.keys(v).length === 1 && typeof v.$ref === "string")) out.push(pointer(parts.concat(k)));
      } else if (k !== "schemas" || parts.length !== 1) {
        visit(v, parts.concat(k));
      }
    }
  };
  visit(doc.paths, ["paths"]);
  visit(doc.components, ["components"]);
  return out;
}

function checkRefs(doc, errors) {
  const walk = (node, parts) => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) {
      node.forEach((v, i) => walk(v, parts.concat(i)));
      return;
    }
    if (typeof node.$ref === "string") {
      const at = pointer(parts);
      if (!node.$ref.startsWith("#")) {
        errors.push(`${at}: $ref ${node.$ref} points outside the document`);
      } else if (resolvePointer(doc, node.$ref) === undefined) {
        errors.push(`${at}: $ref ${node.$ref} does not resolve`);
      }
    }
    for (const [k, v] of Object.entries(node)) walk(v, parts.concat(k));
  };
  walk(doc, []);
}

function checkOperations(doc, errors) {
  const ids = new Map();
  const globalSecurity = doc.security ?? [];
  for (const { path, method, op, item } of operations(doc)) {
    const where = `${method.toUpperCase()} ${path}`;
    if (typeof op.operationId !== "string" || op.operationId === "") {
      errors.push(`${where}: no operationId`);
    } else if (ids.has(op.operationId)) {
      errors.push(`${where}: operationId ${op.operationId} also names ${ids.get(op.operationId)}`);
    } else {
      ids.set(op.operationId, where);
    }

    // Path parameters: each {name} of the template declared, and no other.
    const templated = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    const declared = new Set();
    for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])]) {
      const { node } = follow(doc, p, where);
      if (node && node.in === "path") declared.add(node.name);
    }
    for (const name of templated) if (!declared.has(name)) errors.push(`${where}: path parameter {${name}} not declared`);
    for (const name of declared) if (!templated.has(name)) errors.push(`${where}: path parameter ${name} not in the path`);

    const responses = op.responses ?? {};
    for (const [status, response] of Object.entries(responses)) {
      let node;
      try {
        ({ node } = follow(doc, response, pointer(["paths", path, method, "responses", status])));
      } catch (e) {
        errors.push(`${where} ${status}: ${e.message}`);
        continue;
      }
      if (!node || typeof node !== "object") continue; // reported by checkRefs
      if (status === "204") {
        if (node.content) errors.push(`${where} 204: has content`);
      } else if (!node.content?.[JSON_TYPE]?.schema) {
        errors.push(`${where} ${status}: no ${JSON_TYPE} schema`);
      }
    }

    const security = op.security ?? globalSecurity;
    const behindKey = security.length > 0 && !security.some((r) => Object.keys(r).length === 0);
    if (behindKey) {
      for (const status of ["401", "429"]) {
        if (!responses[status]) errors.push(`${where}: needs the API key but does not list ${status}`);
      }
    }
    if (templated.has("id") && !responses["404"]) errors.push(`${where}: an {id} operation without 404`);
  }
}

function checkSchemas(doc, errors) {
  let ajv;
  try {
    ajv = makeAjv(doc);
  } catch (e) {
    errors.push(`the document cannot be given to Ajv: ${e.message}`);
    return;
  }
  for (const at of schemaLocations(doc)) {
    try {
      ajv.compile(at);
    } catch (e) {
      errors.push(`${at}: the schema does not compile: ${e.message}`);
    }
  }
}

// The document's failures, [] when it holds.
async function documentErrors(doc) {
  const errors = [];
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return ["the document is not a JSON object"];
  if (typeof doc.openapi !== "string" || !/^3\.1\.\d+$/.test(doc.openapi)) {
    errors.push(`openapi is ${JSON.stringify(doc.openapi)}, not 3.1.x`);
  }
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  if (!result.valid) {
    if (typeof result.errors === "string") {
      errors.push(`OpenAPI schema: ${result.errors}`);
    } else {
      for (const e of ajvErrors(result.errors)) errors.push(`OpenAPI schema: ${e}`);
    }
  } else if (validator.version !== "3.1") {
    errors.push(`validated as OpenAPI ${validator.version}, not 3.1`);
  }
  checkRefs(doc, errors);
  checkOperations(doc, errors);
  if (errors.length === 0) checkSchemas(doc, errors);
  return errors;
}

async function loadDocument(file) {
  const doc = readJson(file, "the document");
  const errors = await documentErrors(doc);
  if (errors.length) {
    throw new Failure(errors.map((e) => `${file}: ${e}`).join("\n") + `\n${file}: not a valid OpenAPI 3.1 document`);
  }
  return doc;
}

async function runDocument(file) {
  const doc = await loadDocument(file);
  const ops = operations(doc);
  console.log(`${file}: valid OpenAPI ${doc.openapi}, ${ops.length} operations`);
}

// The declared response of an operation for a status: exact, then "4XX",
// then "default".
function declaredResponse(op, status) {
  const responses = op.responses ?? {};
  for (const key of [String(status), `${String(status)[0]}XX`, "default"]) {
    if (Object.hasOwn(responses, key)) return key;
  }
  return undefined;
}

async function runAnswers(docFile, recordsFile) {
  const doc = await loadDocument(docFile);
  const ajv = makeAjv(doc);
  let text;
  try {
    text = readFileSync(recordsFile, "utf8");
  } catch (e) {
    throw new Failure(`${recordsFile}: cannot read the answers: ${e.message}`);
  }
  const failures = [];
  const covered = new Set();
  let count = 0;
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const at = `${recordsFile}:${i + 1}`;
    count++;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      failures.push(`${at}: not JSON: ${e.message}`);
      return;
    }
    if (!rec || typeof rec !== "object" || typeof rec.method !== "string" || typeof rec.path !== "string" ||
        !Number.isInteger(rec.status) || !Object.hasOwn(rec, "body")) {
      failures.push(`${at}: not a record {"method", "path", "status", "body"}`);
      return;
    }
    const method = rec.method.toLowerCase();
    const where = `${at}: ${rec.method.toUpperCase()} ${rec.path} ${rec.status}`;
    const item = Object.hasOwn(doc.paths, rec.path) ? doc.paths[rec.path] : undefined;
    if (!item) {
      failures.push(`${where}: the document has no path ${rec.path}`);
      return;
    }
    if (!METHODS.includes(method) || !item[method]) {
      failures.push(`${where}: the document has no ${rec.method.toUpperCase()} ${rec.path}`);
      return;
    }
    covered.add(`${method} ${rec.path}`);
    const key = declaredResponse(item[method], rec.status);
    if (key === undefined) {
      failures.push(`${where}: status ${rec.status} is not declared for this operation`);
      return;
    }
    const { node: response, at: responseAt } =
      follow(doc, item[method].responses[key], pointer(["paths", rec.path, method, "responses", key]));
    if (!response.content) {
      if (rec.body !== null && rec.body !== undefined) failures.push(`${where}: a body where the document declares none`);
      return;
    }
    if (!response.content[JSON_TYPE]?.schema) {
      failures.push(`${where}: the document gives no ${JSON_TYPE} schema`);
      return;
    }
    const schemaAt = `${responseAt}/content/${escapeToken(JSON_TYPE)}/schema`;
    const validate = ajv.compile(schemaAt);
    if (!validate(rec.body)) {
      failures.push(`${where}: the body does not match ${schemaAt}:\n    ${ajvErrors(validate.errors).join("\n    ")}`);
    }
  });
  if (count === 0) throw new Failure(`${recordsFile}: no answers`);
  if (failures.length) {
    throw new Failure(failures.join("\n") + `\n${failures.length} of ${count} answers invalid`);
  }
  console.log(`${count} answers valid against ${covered.size} operations`);
}

function runRoutes(file) {
  const doc = readJson(file, "the document");
  const lines = operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`);
  lines.sort();
  for (const line of lines) console.log(line);
}

async function main(argv) {
  const [mode, ...args] = argv;
  if (mode === "document" && args.length === 1) return runDocument(args[0]);
  if (mode === "answers" && args.length === 2) return runAnswers(args[0], args[1]);
  if (mode === "routes" && args.length === 1) return runRoutes(args[0]);
  process.stderr.write(USAGE);
  process.exitCode = 2;
}

try {
  await main(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof Failure)) throw e;
  process.stderr.write(e.message + "\n");
  process.exitCode = 1;
}
