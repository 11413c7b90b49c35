"""GitHub Actions workflow → expanded jobs: the matrix (with include/exclude), `${{ }}` expressions, the steps.

Why our own expansion: nothing runs a workflow's jobs outside GitHub the way they are written, and actionlint
checks syntax and types, not whether `ci/nightly.sh run scenarios/${{ matrix.scenario }}.toml …` names a file
or a flag that exists. Only the expression forms the nightly file uses are evaluated (contexts `matrix`,
`inputs`, `env`, string and number literals, `||`); anything else is a finding, so a new construct is
noticed instead of being skipped.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import yaml

from .model import CheckError, Download, Job, JunitGlob, Pipeline, Upload

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Actions the checker knows how to stand in for. Anything else must be taught here first.
NO_OPS = {"actions/checkout", "Swatinem/rust-cache"}
ARTIFACTS_UP = "actions/upload-artifact"
ARTIFACTS_DOWN = "actions/download-artifact"
JUNIT = "mikepenz/action-junit-report"


def evaluate(expr: str, ctx: dict[str, dict[str, str]], where: str) -> str:
    """Evaluate one expression: `a || b || …` of context references and literals (GitHub's falsy: '')."""
    for alt in (a.strip() for a in expr.split("||")):
        if m := re.fullmatch(r"'((?:[^']|'')*)'", alt):
            value = m.group(1).replace("''", "'")
        elif re.fullmatch(r"-?\d+(\.\d+)?", alt):
            value = alt
        elif m := re.fullmatch(r"(matrix|inputs|env)\.([A-Za-z_][A-Za-z0-9_-]*)", alt):
            value = ctx.get(m.group(1), {}).get(m.group(2), "")
        else:
            raise CheckError(f"{where}: expression {alt!r} is not one the checker evaluates (ci/checkci/github.py)")
        if value != "":
            return value
    return ""


def substitute(text: str, ctx: dict[str, dict[str, str]], where: str) -> str:
    return EXPR.sub(lambda m: evaluate(m.group(1), ctx, where), text)


def scalar(v: object) -> str:
    """A matrix or input value as the expression context sees it (true → 'true', 1 → '1')."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def expand_matrix(matrix: dict | None, where: str) -> list[dict[str, str]]:
    """GitHub's rules: the cartesian product of the list-valued keys, minus `exclude`; then each `include` entry
    is added to every combination whose original keys it does not overwrite, or becomes a new combination."""
    if not matrix:
        return [{}]
    if not isinstance(matrix, dict):
        raise CheckError(f"{where}: strategy.matrix must be a mapping")
    base = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    for k, v in base.items():
        if not isinstance(v, list) or not v:
            raise CheckError(f"{where}: matrix.{k} must be a non-empty list")
    keys = list(base)
    combos = [dict(zip(keys, (scalar(x) for x in vals))) for vals in itertools.product(*base.values())] if keys else []
    for ex in matrix.get("exclude") or []:
        ex = {k: scalar(v) for k, v in ex.items()}
        combos = [c for c in combos if any(c.get(k) != v for k, v in ex.items())]
    originals = [dict(c) for c in combos]
    for inc in matrix.get("include") or []:
        inc = {k: scalar(v) for k, v in inc.items()}
        added = False
        for c, orig in zip(combos, originals):
            if all(orig.get(k, v) == v for k, v in inc.items() if k in keys):
                c.update(inc)
                added = True
        if not added:
            combos.append(dict(inc))
            originals.append(dict(inc))
    return combos or [{}]


def action_name(uses: str) -> str:
    return uses.split("@", 1)[0]


def load(path: Path) -> Pipeline:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CheckError(f"{path}: not YAML: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), dict):
        raise CheckError(f"{path}: no `jobs:` mapping")
    on = doc.get("on", doc.get(True)) or {}
    inputs = {}
    if isinstance(on, dict):
        for name, spec in ((on.get("workflow_dispatch") or {}).get("inputs") or {}).items():
            inputs[name] = ""  # a scheduled run has no inputs: the file's `||` defaults apply
            del spec
    wf_env = {k: substitute(scalar(v), {"inputs": inputs}, f"{path}: env.{k}") for k, v in (doc.get("env") or {}).items()}

    order = toposort(doc["jobs"], path)
    jobs: list[Job] = []
    for job_id, stage in order:
        spec = doc["jobs"][job_id]
        where = f"{path}: jobs.{job_id}"
        container = spec.get("container")
        image = container.get("image", "") if isinstance(container, dict) else (container or "")
        if not image:
            raise CheckError(f"{where}: no `container:` — the scripts are written for Debian; run the job in one")
        for cell in expand_matrix((spec.get("strategy") or {}).get("matrix"), where):
            ctx = {"matrix": cell, "inputs": inputs, "env": dict(wf_env)}
            env = dict(wf_env)
            for k, v in (spec.get("env") or {}).items():
                env[k] = substitute(scalar(v), ctx, f"{where}.env.{k}")
            ctx["env"] = env
            name = substitute(str(spec.get("name", job_id)), ctx, f"{where}.name")
            steps: list[object] = []
            for i, step in enumerate(spec.get("steps") or []):
                swhere = f"{where}.steps[{i}]"
                if "run" in step:
                    if step.get("shell", "bash") != "bash":
                        raise CheckError(f"{swhere}: only `shell: bash` (the default) is checked")
                    steps.append(substitute(str(step["run"]), ctx, swhere))
                    continue
                uses = action_name(str(step.get("uses", "")))
                w = {k: substitute(scalar(v), ctx, f"{swhere}.with.{k}") for k, v in (step.get("with") or {}).items()}
                if uses in NO_OPS:
                    continue
                if uses == ARTIFACTS_UP:
                    steps.append(Upload(name=w["name"], path=w["path"]))
                elif uses == ARTIFACTS_DOWN:
                    steps.append(Download(pattern=w.get("pattern") or w.get("name") or "*", into=w.get("path", ".")))
                elif uses == JUNIT:
                    steps.append(JunitGlob(glob=w["report_paths"]))
                else:
                    raise CheckError(f"{swhere}: action {uses!r} is not one the checker stands in for")
            jobs.append(Job(name=f"{job_id} ({name})", stage=stage, image=image, env=env, steps=steps, matrix=cell))
    return Pipeline(path=path, dialect="github", jobs=jobs, variables={k: str(v) for k, v in wf_env.items()})


def toposort(jobs: dict, path: Path) -> list[tuple[str, int]]:
    """Jobs in an order that respects `needs:`, each with its depth (0: needs nothing; else 1 + the deepest job
    it needs): jobs of one depth may run together."""
    depth: dict[str, int] = {}

    def visit(j: str, chain: tuple[str, ...]) -> int:
        if j in depth:
            return depth[j]
        if j in chain:
            raise CheckError(f"{path}: jobs need each other in a cycle: {' → '.join(chain + (j,))}")
        if j not in jobs:
            raise CheckError(f"{path}: jobs.{chain[-1]} needs unknown job {j!r}")
        needs = jobs[j].get("needs") or []
        d = max((visit(n, chain + (j,)) + 1 for n in ([needs] if isinstance(needs, str) else needs)), default=0)
        depth[j] = d
        return d

    for j in jobs:
        visit(j, ())
    return sorted(depth.items(), key=lambda kv: kv[1])
