// Builds the package: dist/*.js and *.d.ts (tsc, for bundlers and Node) and dist/tracker.min.js
// (esbuild: one minified ES module for a plain <script type="module">). With --tests it also
// compiles the tests and the sources they import into build/ for `node --test`.

import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(PACKAGE, "node_modules/.bin/tsc");

function compile(project, outDir) {
  rmSync(join(PACKAGE, outDir), { recursive: true, force: true });
  try {
    execFileSync(tsc, ["-p", join(PACKAGE, project)], { cwd: PACKAGE, stdio: "inherit" });
  } catch {
    process.exit(1);
  }
}

compile("tsconfig.json", "dist");
await build({
  entryPoints: [join(PACKAGE, "src/index.ts")],
  outfile: join(PACKAGE, "dist/tracker.min.js"),
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  logLevel: "warning",
});
if (process.argv.includes("--tests")) compile("tsconfig.test.json", "build");
