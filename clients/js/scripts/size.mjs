// Prints the browser bundle's size, minified and gzipped (what a page downloads); run by
// `npm run size` after a build. docs/benchmarks.md records it; the goal is under 10 KB.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = readFileSync(join(PACKAGE, "dist/tracker.min.js"));
const gzipped = gzipSync(bundle, { level: 9 }).length;
console.log(`dist/tracker.min.js: ${bundle.length} bytes minified, ${gzipped} bytes gzipped (goal < 10240)`);
