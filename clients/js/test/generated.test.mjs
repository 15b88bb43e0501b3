// src/protocol.generated.ts must be exactly what `npm run gen` makes from
// docs/protocol.schema.json, so the schema and the checked-in types cannot drift.
// (src/types-check.ts, compiled by `npm run build`, then proves that the
// hand-written frames.ts agrees with the generated types.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const checkedIn = join(pkg, "src", "protocol.generated.ts");
const schemaPath = resolve(pkg, "../../docs/protocol.schema.json");

test("src/protocol.generated.ts is up to date with docs/protocol.schema.json", { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "streamer-gen-"));
  try {
    const out = join(dir, "protocol.generated.ts");
    execFileSync(process.execPath, [join(pkg, "scripts", "gen.mjs"), out], { cwd: pkg });
    const fresh = readFileSync(out, "utf8");
    assert.equal(
      fresh,
      readFileSync(checkedIn, "utf8"),
      "the schema changed: run `npm run gen` in clients/js and commit src/protocol.generated.ts",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every schema definition has a generated type", () => {
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const generated = readFileSync(checkedIn, "utf8");
  for (const name of Object.keys(schema.$defs)) {
    assert.match(generated, new RegExp(`export (type|interface) ${name}\\b`), name);
  }
});
