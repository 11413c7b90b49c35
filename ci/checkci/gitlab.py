"""GitLab CI file → expanded jobs: structure validated against GitLab's keywords, `extends` resolved,
`parallel: matrix` expanded, artifacts passed on the way GitLab does it.

Why our own validation: actionlint knows only GitHub Actions, and GitLab's own linter needs a GitLab server.
The checks are the ones that break a pipeline silently or at its first run: an unknown or misspelt keyword, a
job without `script`, a stage not in `stages`, a matrix that is not a list of variable → value(s) mappings,
artifacts that name no paths. GitLab semantics the runner needs: jobs of a stage run after every job of the
stages before it, and (without `needs`/`dependencies`) receive all of their artifacts at the paths they were
collected from; variables reach the scripts as environment variables; a script is its lines run in order.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml

from .model import CheckError, Download, Job, JunitGlob, Pipeline, Upload

GLOBAL_KEYS = {"default", "include", "stages", "variables", "workflow", "spec", "image", "services", "cache",
               "before_script", "after_script"}
JOB_KEYS = {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage", "dependencies",
            "environment", "extends", "hooks", "id_tokens", "identity", "image", "inherit", "interruptible",
            "needs", "pages", "parallel", "release", "resource_group", "retry", "rules", "script", "secrets",
            "services", "stage", "tags", "timeout", "trigger", "variables", "when"}
DEFAULT_KEYS = {"after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens", "image",
                "interruptible", "retry", "services", "tags", "timeout"}
ARTIFACT_KEYS = {"paths", "exclude", "expire_in", "expose_as", "name", "public", "access", "reports", "untracked",
                 "when"}
WHEN = {"on_success", "on_failure", "always", "manual", "delayed", "never"}
DEFAULT_STAGES = [".pre", "build", "test", "deploy", ".post"]


def lines(v: object, where: str) -> list[str]:
    """A script: a string or a (nested) list of strings."""
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        out: list[str] = []
        for x in v:
            out += lines(x, where)
        return out
    raise CheckError(f"{where}: a script is a string or a list of strings, not {type(v).__name__}")


def variables(v: object, where: str) -> dict[str, str]:
    """`NAME: value` or `NAME: {value: …, description: …}`."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise CheckError(f"{where}: variables must be a mapping")
    out = {}
    for k, x in v.items():
        if isinstance(x, dict):
            unknown = set(x) - {"value", "description", "expand", "options"}
            if unknown or "value" not in x:
                raise CheckError(f"{where}.{k}: a variable mapping has `value` (and description, expand, options)")
            x = x["value"]
        if not isinstance(x, (str, int, float)) or isinstance(x, bool):
            raise CheckError(f"{where}.{k}: a variable's value is a string or number")
        out[str(k)] = str(x)
    return out


def merge(base: dict, over: dict) -> dict:
    """GitLab's `extends` merge: mappings deep-merged, everything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve(name: str, doc: dict, path: Path, chain: tuple[str, ...] = ()) -> dict:
    spec = doc[name]
    if name in chain:
        raise CheckError(f"{path}: `extends` cycle: {' → '.join(chain + (name,))}")
    parents = spec.get("extends") or []
    out: dict = {}
    for p in [parents] if isinstance(parents, str) else parents:
        if p not in doc or not isinstance(doc[p], dict):
            raise CheckError(f"{path}: {name} extends unknown job {p!r}")
        out = merge(out, resolve(p, doc, path, chain + (name,)))
    return merge(out, {k: v for k, v in spec.items() if k != "extends"})


def expand_parallel(par: object, where: str) -> list[dict[str, str]]:
    if par is None:
        return [{}]
    if isinstance(par, int):
        raise CheckError(f"{where}: `parallel: N` runs N identical jobs; the nightly needs `parallel: matrix`")
    if not isinstance(par, dict) or set(par) != {"matrix"} or not isinstance(par["matrix"], list):
        raise CheckError(f"{where}: parallel must be `matrix:` with a list of variable mappings")
    cells: list[dict[str, str]] = []
    for i, entry in enumerate(par["matrix"]):
        if not isinstance(entry, dict) or not entry:
            raise CheckError(f"{where}.matrix[{i}]: each entry maps variables to a value or a list of values")
        axes = []
        for k, v in entry.items():
            vals = v if isinstance(v, list) else [v]
            if not vals or any(not isinstance(x, (str, int)) or isinstance(x, bool) for x in vals):
                raise CheckError(f"{where}.matrix[{i}].{k}: values are strings (or a list of them)")
            axes.append([(str(k), str(x)) for x in vals])
        cells += [dict(c) for c in itertools.product(*axes)]
    if len(cells) > 200:
        raise CheckError(f"{where}: {len(cells)} matrix jobs; GitLab allows 200")
    return cells


def load(path: Path) -> Pipeline:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CheckError(f"{path}: not YAML: {e}") from e
    if not isinstance(doc, dict):
        raise CheckError(f"{path}: not a mapping of keywords and jobs")
    stages = doc.get("stages", DEFAULT_STAGES)
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise CheckError(f"{path}: stages must be a list of names")
    stages = [".pre"] + [s for s in stages if s not in (".pre", ".post")] + [".post"]
    default = doc.get("default") or {}
    if not isinstance(default, dict) or set(default) - DEFAULT_KEYS:
        raise CheckError(f"{path}: default: unknown keyword(s) {sorted(set(default) - DEFAULT_KEYS)}")
    top_vars = variables(doc.get("variables"), f"{path}: variables")
    jobs: list[Job] = []
    for name, raw in doc.items():
        if name in GLOBAL_KEYS:
            continue
        if not isinstance(raw, dict):
            raise CheckError(f"{path}: {name!r} is neither a GitLab keyword nor a job (mapping)")
        unknown = set(raw) - JOB_KEYS
        if unknown:
            raise CheckError(f"{path}: job {name}: unknown keyword(s) {sorted(unknown)}")
        if name.startswith("."):
            continue  # hidden job: a template for `extends`
        spec = merge(default, resolve(name, doc, path))
        where = f"{path}: job {name}"
        if "script" not in spec and "trigger" not in spec:
            raise CheckError(f"{where}: no `script`")
        stage = spec.get("stage", "test")
        if stage not in stages:
            raise CheckError(f"{where}: stage {stage!r} is not in stages {stages[1:-1]}")
        if spec.get("when", "on_success") not in WHEN:
            raise CheckError(f"{where}: when: {spec['when']!r} is not one of {sorted(WHEN)}")
        image = spec.get("image")
        image = image.get("name") if isinstance(image, dict) else image
        if not image:
            raise CheckError(f"{where}: no `image` — the scripts are written for Debian; run the job in one")
        art = spec.get("artifacts") or {}
        if set(art) - ARTIFACT_KEYS:
            raise CheckError(f"{where}: artifacts: unknown keyword(s) {sorted(set(art) - ARTIFACT_KEYS)}")
        if art and not art.get("paths") and not art.get("reports"):
            raise CheckError(f"{where}: artifacts without paths or reports")
        script = lines(spec.get("before_script", []), f"{where}.before_script") + lines(spec["script"], f"{where}.script")
        job_vars = variables(spec.get("variables"), f"{where}.variables")
        for cell in expand_parallel(spec.get("parallel"), f"{where}.parallel"):
            steps: list[object] = ["\n".join(script)]
            junit = (art.get("reports") or {}).get("junit")
            for g in [junit] if isinstance(junit, str) else junit or []:
                steps.append(JunitGlob(glob=g))
            label = f"{name}: [{', '.join(cell.values())}]" if cell else name
            for i, p in enumerate(art.get("paths") or []):
                steps.append(Upload(name=f"{label}#{i}", path=str(p), keep_path=True))
            jobs.append(Job(name=label, stage=stages.index(stage), image=str(image),
                            env={**top_vars, **job_vars, **cell}, steps=steps, matrix=cell))
    if not jobs:
        raise CheckError(f"{path}: no jobs")
    first = min(j.stage for j in jobs)
    for j in jobs:
        if j.stage > first:  # receives every artifact of the stages before it, at its path
            j.steps.insert(0, Download(pattern="*", into=""))
    return Pipeline(path=path, dialect="gitlab", jobs=jobs, variables=top_vars)
