// Generates src/contract.ts, the event types, from the API's JSON Schema (GET /v1/schema).
//
//   npm run generate:types                       # the schema of this checkout's Python package
//   npm run generate:types -- http://HOST/v1/schema
//   npm run generate:types -- schema.json --out other.ts
//
// Without a source it asks the repository's virtual environment (../../.venv, `make install`) for
// `ingest.contract.event_json_schema()`, the document the API serves. The output depends only on
// the schema and the locked json-schema-to-typescript, so a test can compare it with the file.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPOSITORY = resolve(PACKAGE, "../..");
const BANNER = `// Generated from the event contract's JSON Schema (GET /v1/schema) by
// \`npm run generate:types\`; do not edit by hand.`;

async function readSchema(source) {
  if (source === undefined) {
    const python = join(REPOSITORY, ".venv/bin/python");
    const code =
      "import json; from ingest.contract import event_json_schema; print(json.dumps(event_json_schema()))";
    if (!existsSync(python)) throw new Error(`${python} is missing: run \`make install\` first`);
    return JSON.parse(execFileSync(python, ["-c", code], { cwd: REPOSITORY, encoding: "utf8" }));
  }
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`GET ${source} answered ${response.status}`);
    return response.json();
  }
  return JSON.parse(readFileSync(source, "utf8"));
}

/**
 * pydantic titles every property and repeats a description beside each `$ref`; taken literally,
 * json-schema-to-typescript turns each into a named alias (`EventId1`, `AppInfo3`, ...). Keep
 * titles on the definitions only and wrap `$ref` siblings, so the fields stay inline.
 */
function tidy(node, isDefinition = false) {
  if (Array.isArray(node)) return node.map((item) => tidy(item));
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "title" && !isDefinition) continue;
    if (key === "$defs" || key === "properties") {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, child]) => [name, tidy(child, key === "$defs")]),
      );
    } else {
      out[key] = tidy(value);
    }
  }
  if (out.$ref !== undefined && Object.keys(out).length > 1) {
    return out.description
      ? { description: out.description, allOf: [{ $ref: out.$ref }] }
      : { $ref: out.$ref };
  }
  // A definition with both fields and an `anyOf` of requirements (CopyEvent: text or span):
  // name both halves instead of the generated `CopyEvent1 & CopyEvent2`.
  if (isDefinition && out.anyOf !== undefined && out.properties !== undefined) {
    const { anyOf, title, description, ...fields } = out;
    return {
      title,
      description,
      allOf: [
        { ...fields, title: `${title}Fields` },
        { anyOf, title: `${title}Requires` },
      ],
    };
  }
  return out;
}

async function main(argv) {
  let source;
  let out = join(PACKAGE, "src/contract.ts");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out") out = resolve(argv[++i]);
    else source = argv[i];
  }
  const schema = tidy(await readSchema(source));
  schema.title = "ContractEvent";
  const types = await compile(schema, "ContractEvent", {
    bannerComment: BANNER,
    additionalProperties: false,
  });
  writeFileSync(out, types);
  console.log(`wrote ${out}`);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`generate-types: ${error.message}`);
  process.exit(1);
});
