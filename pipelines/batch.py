"""``usdposer batch JOB.toml``: many assets through several verbs, each (asset, step) a task that calls the verb's
pipeline function (never a subprocess of the CLI), on a local process pool (the default: no server, no Ray import) or
on Ray (``--ray``: a local instance; ``--ray ADDRESS``: a cluster), the same job file either way.

The job file (TOML, read with the standard library)::

    [inputs]
    paths = ["assets/khronos/*.glb", "more/"]      # files, folders, globs
    manifest = "assets.txt"                        # optional: one path per line (relative to the job file)

    [output]
    folder = "out"                                 # default: JOB_STEM.out beside the job file; one folder per asset

    [[steps]]
    verb = "import"
    [[steps]]
    verb = "check"
    [[steps]]
    verb = "sample"
    options = { n = 16 }                           # the verb's options (its pipeline's Options fields)
    resources = { cpus = 1, gpus = 0, memory = "2GB" }
    [[steps]]
    verb = "render"
    options = { mode = "sheet", samples = "@sample" }   # "@STEP": that step's output for the same asset

Each step reads the asset as the step before left it (``import`` writes ``ASSET.usdc``, ``skin``/``distill``/
``track`` write layers over it that later steps read; ``check``, ``sample``, ``render``, ``generate`` leave it as it
was). Resume: every output has a ``.batch.json`` beside it with the hash of its input's bytes, the verb and its
options; a task whose output is present and current is skipped. Writes are atomic (the verbs'), so an interrupted
batch resumes with nothing half-written. ``batch.json`` (every task) and ``batch.junit.xml`` (one test case per
asset and step) go into the output folder, one log per task into ``logs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from usdposer.pipelines._base import Progress, Result

from usdposer.errors import InputError, failure_line, real, whole

# verb -> (module, function, options class, output name pattern, the output becomes the asset later steps read)
STEPS = {
    "import": ("usdposer.pipelines.import_", "import_", "ImportOptions", "{name}.usdc", True),
    "skin": ("usdposer.pipelines.skin", "skin", "SkinOptions", "{name}.skin.usdc", True),
    "check": ("usdposer.pipelines.check", "check", "CheckOptions", "{name}.check.json", False),
    "sample": ("usdposer.pipelines.sample", "sample", "SampleOptions", "{name}.samples.usdc", False),
    "render": ("usdposer.pipelines.render", "render", "RenderOptions", "{name}.{mode}.{ext}", False),
    "distill": ("usdposer.pipelines.distill", "distill", "DistillOptions", "{name}.distill.usdc", True),
    "track": ("usdposer.pipelines.track", "track", "TrackOptions", "{name}.track.usdc", True),
    "generate": ("usdposer.pipelines.generate", "generate", "GenerateOptions", "{name}.mp4", False),
}
RESOURCES = ("cpus", "gpus", "memory")
CRASH_ONCE = "USDPOSER_BATCH_CRASH_ONCE"  # fault injection for tests: the first task to see this file missing dies


class JobError(InputError):
    """The job file is invalid: exit 2 with this one line (it names the key and the fix)."""


@dataclass
class Step:
    verb: str
    options: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    name: str = ""  # the verb, numbered when a job runs one verb twice


@dataclass
class Job:
    path: str
    assets: list[str]
    steps: list[Step]
    out: str


def _options_class(verb: str):
    import importlib

    mod, _, cls, _, _ = STEPS[verb]
    return getattr(importlib.import_module(mod), cls)


def _check_options(i: int, verb: str, options: dict) -> dict:
    """Option names and value types against the verb's Options dataclass (a TOML key may use - or _)."""
    cls = _options_class(verb)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in options.items():
        name = key.replace("-", "_")
        if name not in fields or name in ("arguments", "cfg", "art_cfg"):
            allowed = ", ".join(sorted(n for n in fields if n not in ("arguments", "cfg", "art_cfg")))
            raise JobError(f"steps[{i}] ({verb}): unknown option {key!r}; the options are {allowed}")
        default = fields[name].default
        if isinstance(value, str) and value.startswith("@"):
            out[name] = value
            continue
        ok = (default is None or default is dataclasses.MISSING or isinstance(value, type(default))
              or (isinstance(default, float) and whole(value))
              or (isinstance(default, tuple) and isinstance(value, list)))
        if not ok:
            raise JobError(f"steps[{i}] ({verb}): option {key!r} = {value!r} should be a {type(default).__name__}")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def read_job(path: str | os.PathLike) -> Job:
    """Parse and validate a job file; every problem is a :class:`JobError` naming the key and the fix."""
    import glob

    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise JobError(f"{path}: cannot read the job file ({exc.strerror or exc}); pass a TOML job file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JobError(f"{path}: not TOML ({exc}); see `usdposer batch --help` for the format") from exc
    unknown = set(data) - {"inputs", "output", "steps"}
    if unknown:
        raise JobError(f"{path}: unknown key {sorted(unknown)[0]!r}; a job has [inputs], [output] and [[steps]]")
    base = path.parent
    inputs = data.get("inputs")
    if not isinstance(inputs, dict) or not (inputs.get("paths") or inputs.get("manifest")):
        raise JobError(f"{path}: [inputs] needs paths = [...] (files, folders, globs) or manifest = \"FILE\"")
    bad = set(inputs) - {"paths", "manifest"}
    if bad:
        raise JobError(f"{path}: unknown key inputs.{sorted(bad)[0]}; [inputs] has paths and manifest")
    specs = inputs.get("paths", [])
    if isinstance(specs, str):
        specs = [specs]
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise JobError(f"{path}: inputs.paths must be a list of strings (files, folders, globs)")
    if inputs.get("manifest"):
        if not isinstance(inputs["manifest"], str):
            raise JobError(f"{path}: inputs.manifest must be a file name, e.g. manifest = \"assets.txt\"")
        man = base / inputs["manifest"]
        try:
            specs = specs + [ln.strip() for ln in man.read_text().splitlines()
                             if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise JobError(f"{path}: inputs.manifest {man}: cannot read it ({exc.strerror}); one asset path per line") from exc
    from usdposer.io.dataset import expand_sources

    assets = []
    for spec in specs:
        full = spec if os.path.isabs(spec) else str(base / spec)
        if glob.has_magic(full) or Path(full).is_dir():
            try:
                found = expand_sources([full])
            except InputError:
                found = []
            if not found:
                raise JobError(f"{path}: inputs.paths {spec!r} matches no USD, glTF, BVH or MJCF file; fix the glob")
            assets += [str(f) for f in found]
        elif Path(full).exists():
            assets.append(full)
        else:
            raise JobError(f"{path}: inputs.paths {spec!r}: no such file; fix the path (relative to the job file)")
    assets = list(dict.fromkeys(assets))
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        raise JobError(f"{path}: no [[steps]]; add at least one, e.g. [[steps]] verb = \"import\"")
    steps, seen = [], {}
    for i, s in enumerate(steps_data):
        if not isinstance(s, dict) or "verb" not in s:
            raise JobError(f"{path}: steps[{i}] has no verb; e.g. verb = \"check\"")
        verb = s["verb"]
        if not isinstance(verb, str) or verb not in STEPS:
            raise JobError(f"{path}: steps[{i}]: unknown verb {verb!r}; batch runs {', '.join(STEPS)}")
        extra = set(s) - {"verb", "options", "resources"}
        if extra:
            raise JobError(f"{path}: steps[{i}] ({verb}): unknown key {sorted(extra)[0]!r}; a step has verb, options, "
                           "resources")
        res = s.get("resources", {})
        if not isinstance(res, dict) or set(res) - set(RESOURCES):
            raise JobError(f"{path}: steps[{i}] ({verb}): resources take {', '.join(RESOURCES)}")
        for k in ("cpus", "gpus"):
            if k in res and (not real(res[k]) or not 0 <= res[k] < math.inf):  # TOML has nan and inf
                raise JobError(f"{path}: steps[{i}] ({verb}): resources.{k} must be a finite number >= 0 (got "
                               f"{res[k]!r})")
        res = dict(res)
        if "memory" in res:  # bytes from here on (Ray's unit)
            res["memory"] = _memory_bytes(res["memory"], f"{path}: steps[{i}] ({verb}): resources.memory")
        opts = s.get("options", {})
        if not isinstance(opts, dict):
            raise JobError(f"{path}: steps[{i}] ({verb}): options must be a table, e.g. options = {{ n = 16 }}")
        seen[verb] = seen.get(verb, 0) + 1
        steps.append(Step(verb, _check_options(i, verb, opts), res,
                          verb if seen[verb] == 1 else f"{verb}{seen[verb]}"))
    names = {s.name for s in steps}
    for i, s in enumerate(steps):
        for k, v in s.options.items():
            if isinstance(v, str) and v.startswith("@") and v[1:] not in [t.name for t in steps[:i]]:
                raise JobError(f"{path}: steps[{i}] ({s.verb}): option {k} = {v!r} names no earlier step "
                               f"({', '.join(sorted(names))})")
    out = data.get("output", {})
    if not isinstance(out, dict) or set(out) - {"folder"}:
        raise JobError(f"{path}: [output] has one key, folder = \"DIR\"")
    folder = out.get("folder") or f"{path.stem}.out"
    if not isinstance(folder, str):
        raise JobError(f"{path}: [output] folder must be a path, e.g. folder = \"results\" (got {folder!r})")
    return Job(str(path), assets, steps, str(folder if os.path.isabs(folder) else base / folder))


def _memory_bytes(value, where: str) -> int:
    import re

    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(value))
    if not m:
        raise JobError(f"{where} {value!r}: write a size such as \"2GB\" or \"512MB\"")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


# ------------------------------------------------------------------------------------------------- one task


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def task_key(task: dict) -> str:
    """The hash a task's output is current for: its input's bytes, the verb, its options and the key of the step
    before it (a changed source re-runs every later step of its asset, even where an import wrote the same bytes)."""
    h = hashlib.sha256()
    _hash_file(Path(task["input"]), h)
    for ref in sorted(task.get("refs", {}).values()):
        _hash_file(Path(ref), h)
    h.update(json.dumps({"verb": task["verb"], "options": task["options"], "upstream": task.get("upstream")},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def output_name(task: dict) -> str:
    mode = task["options"].get("mode", "video")
    ext = {"sheet": "png", "turntable": "gif", "video": "gif", "keyframes": "keyframes"}.get(mode, "gif")
    return STEPS[task["verb"]][3].format(name=task["name"], mode=mode, ext=ext)


def run_task(task: dict) -> dict:
    """Run one (asset, step) task in this process: skip it when its output is current, else call the verb's
    pipeline function; never raises for the verb's own errors (the row says "failed" with the one line)."""
    import importlib

    tick = time.perf_counter()
    out = Path(task["output"])
    side = out.with_name(out.name + ".batch.json")
    row = {"asset": task["asset"], "step": task["step"], "verb": task["verb"], "output": str(out),
           "status": "done", "seconds": 0.0, "error": None}
    crash = os.environ.get(CRASH_ONCE)
    if crash and not Path(crash).exists():  # fault injection (tests): this worker dies once, mid-batch
        Path(crash).write_text(f"{task['asset']} {task['step']}\n")
        os._exit(137)
    try:
        key = row["key"] = task_key(task)
        if side.is_file() and out.exists():
            try:
                prev = json.loads(side.read_text())
            except ValueError:  # a cut or foreign sidecar: the task runs again
                prev = None
            if isinstance(prev, dict) and prev.get("key") == key:
                return {**row, "status": "skipped"}
        mod, fn, cls, _, _ = STEPS[task["verb"]]
        module = importlib.import_module(mod)
        options = {k: (task["refs"][k] if k in task.get("refs", {}) else v) for k, v in task["options"].items()}
        opts = getattr(module, cls)(**options, **({"arguments": ("batch", task["step"])}
                                                   if "arguments" in {f.name for f in dataclasses.fields(getattr(module, cls))} else {}))
        out.parent.mkdir(parents=True, exist_ok=True)
        from usdposer.outputs import atomic_file

        if task["verb"] == "check":
            report = getattr(module, fn)([task["input"]], opts)
            from usdposer.validate.report import format_json

            with atomic_file(out) as tmp:
                tmp.write_text(format_json(report))
            if report.exit_code:
                failed = [f for f in report.findings if f.severity in ("failed", "error")]
                row.update(status="failed", error=f"check: {len(failed)} failed finding(s), first: "
                           f"{failed[0].id if failed else '?'} {failed[0].message if failed else ''}"[:300])
        else:
            getattr(module, fn)(task["input"], out, opts)
        if row["status"] == "done":
            with atomic_file(side) as tmp:
                tmp.write_text(json.dumps({"key": key, "verb": task["verb"], "input": task["input"],
                                           "options": task["options"]}, default=str))
    except Exception as exc:  # noqa: BLE001 - a task fails alone, with the verb's one line
        row.update(status="failed", error=failure_line(exc))
    row["seconds"] = round(time.perf_counter() - tick, 3)
    return row


# ------------------------------------------------------------------------------------------------- the runners


@dataclass
class BatchReport(Result):
    """What ``usdposer batch`` did (its ``--json`` result, also ``batch.json``)."""

    job: str
    output: str
    runner: str
    workers: int
    tasks: list[dict] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    seconds: float = 0.0
    junit: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _init_worker(threads: int) -> None:
    """A pool worker's share of the cores (torch and OpenMP would each take them all: N workers x N threads on N
    cores runs slower than one worker; Ray does the same with OMP_NUM_THREADS = num_cpus)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


class _LocalRunner:
    """A process pool on this machine (spawned workers: no state shared with the parent)."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    def _ensure(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(threads,))
        return self._pool

    def submit(self, task: dict, step: Step):
        return self._ensure().submit(run_task, task)

    def wait(self, futures: list) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, fut):
        """(row, None) or (None, the reason the worker died)."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return fut.result(), None
        except BrokenProcessPool as exc:
            if self._pool is not None:  # a dead worker breaks the pool (and every task in it): a fresh one
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            return None, f"worker died ({exc.__class__.__name__})"

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


class _RayRunner:
    """The same tasks as Ray remote functions with each step's resources (``num_cpus``, ``num_gpus``, ``memory``)."""

    name = "ray"

    def __init__(self, address: str | None, workers: int, retries: int):
        from usdposer._deps import require

        ray = require("ray", extra="cluster")
        self.ray = ray
        self.retries = retries
        if not ray.is_initialized():
            kw = {"address": address} if address else {"num_cpus": workers}
            try:
                ray.init(**kw, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                         runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                                   if k in (CRASH_ONCE, "WARP_CACHE_PATH", "PXR_PLUGINPATH_NAME")}})
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError...
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise InputError(f"--ray: cannot start or join {where} ({first}); start a cluster with `ray start "
                                 "--head` and pass its address (HOST:6379), or --ray alone for a local one") from exc
        self._remote = ray.remote(run_task)
        self.workers = int(ray.cluster_resources().get("CPU", workers))

    def submit(self, task: dict, step: Step):
        res = step.resources
        opts = {"num_cpus": res.get("cpus", 1), "num_gpus": res.get("gpus", 0), "max_retries": self.retries}
        if "memory" in res:
            opts["memory"] = res["memory"]
        return self._remote.options(**opts).remote(task)

    def wait(self, futures: list) -> list:
        done, _ = self.ray.wait(futures, num_returns=1)
        return done

    def result(self, ref):
        try:
            return self.ray.get(ref), None
        except Exception as exc:  # noqa: BLE001 - Ray's worker-crash and OOM errors, after its own retries
            return None, f"worker died after {self.retries} retries ({type(exc).__name__})"

    def close(self):
        pass


def _tasks_for(job: Job) -> dict[str, list[dict]]:
    """Per asset, its tasks in step order (inputs filled in as the chain runs)."""
    from usdposer.core.selection import unique_stems

    return {a: [{"asset": a, "name": name, "step": s.name, "verb": s.verb, "options": dict(s.options)}
                for s in job.steps] for a, name in zip(job.assets, unique_stems(job.assets))}


def run_batch(job: Job, *, workers: int | None = None, ray: str | bool | None = None, retries: int = 2,
              progress: Progress | None = None) -> BatchReport:
    """Run every task of ``job`` (module docstring); ``ray``: None/False local, True a local Ray, a string an address."""
    from usdposer.pipelines._base import no_progress

    from usdposer.outputs import check_writable

    workers = workers or os.cpu_count() or 1
    out = Path(job.out)
    check_writable(out, folder=True, what="batch output folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    runner = _RayRunner(ray if isinstance(ray, str) else None, workers, retries) if ray else _LocalRunner(workers)
    steps = {s.name: s for s in job.steps}
    chains = _tasks_for(job)
    nxt = {a: 0 for a in chains}
    current = {a: a for a in chains}  # the file each asset's next step reads
    outputs: dict[str, dict[str, str]] = {a: {} for a in chains}
    attempts: dict[tuple[str, str], int] = {}
    rep = BatchReport(job.path, str(out), runner.name, runner.workers)
    tick = time.perf_counter()
    progress = progress or no_progress
    total = sum(len(c) for c in chains.values())
    bar = progress(total=total, desc="batch", unit="task")
    inflight: dict = {}
    keys: dict[str, str] = {}  # per asset, the key of its last finished step

    def launch(a: str) -> None:
        t = chains[a][nxt[a]]
        folder = out / t["name"]
        t["input"] = current[a]
        t["upstream"] = keys.get(a)
        t["output"] = str(folder / output_name(t))
        t["refs"] = {k: outputs[a][v[1:]] for k, v in t["options"].items() if isinstance(v, str) and v.startswith("@")}
        inflight[runner.submit(t, steps[t["step"]])] = a

    def finish(a: str, row: dict) -> None:
        rep.tasks.append(row)
        t = chains[a][nxt[a]]
        setattr(rep, row["status"], getattr(rep, row["status"]) + 1)
        log = out / "logs" / f"{t['name']}.{t['step']}.log"
        log.write_text(json.dumps(row, default=str) + "\n")
        bar.update(1)
        bar.set_postfix(done=rep.done, failed=rep.failed, skipped=rep.skipped)
        if row["status"] == "failed":  # the asset's later steps cannot run: each reported, not run
            for rest in chains[a][nxt[a] + 1:]:
                rep.tasks.append({"asset": a, "step": rest["step"], "verb": rest["verb"], "output": None,
                                  "status": "failed", "seconds": 0.0,
                                  "error": f"not run: step {t['step']} failed"})
                rep.failed += 1
                bar.update(1)
            nxt[a] = len(chains[a])
            return
        outputs[a][t["step"]] = t["output"]
        keys[a] = row.get("key")
        if STEPS[t["verb"]][4]:
            current[a] = t["output"]
        nxt[a] += 1
        if nxt[a] < len(chains[a]):
            launch(a)

    try:
        for a in chains:
            launch(a)
        while inflight:
            for fut in runner.wait(list(inflight)):
                a = inflight.pop(fut)
                row, died = runner.result(fut)
                if row is None:
                    t = chains[a][nxt[a]]
                    k = (a, t["step"])
                    attempts[k] = attempts.get(k, 0) + 1
                    if runner.name == "local" and attempts[k] <= retries:
                        rep.retried += 1
                        lost = list(inflight.items())  # the broken pool took the others' futures too
                        inflight.clear()
                        launch(a)
                        for _, other in lost:
                            launch(other)
                        break
                    row = {"asset": a, "step": t["step"], "verb": t["verb"], "output": t.get("output"),
                           "status": "failed", "seconds": 0.0, "error": died}
                finish(a, row)
    finally:
        runner.close()
        bar.close()
    order = {(a, t["step"]): i for i, (a, c) in enumerate(chains.items()) for t in c}
    rep.tasks.sort(key=lambda r: order.get((r["asset"], r["step"]), 0))
    rep.seconds = time.perf_counter() - tick
    from usdposer.outputs import atomic_file

    rep.junit = str(out / "batch.junit.xml")
    with atomic_file(rep.junit) as tmp:
        tmp.write_text(junit(rep))
    with atomic_file(out / "batch.json") as tmp:
        tmp.write_text(json.dumps(rep.to_json(), indent=1, default=str))
    return rep


def junit(rep: BatchReport) -> str:
    """JUnit XML: one testsuite per step, one testcase per asset (failed -> <failure>, skipped -> <skipped>: current)."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="usdposer batch", tests=str(len(rep.tasks)), failures=str(rep.failed))
    suites: dict[str, ET.Element] = {}
    for r in rep.tasks:
        s = suites.get(r["step"])
        if s is None:
            s = suites[r["step"]] = ET.SubElement(root, "testsuite", name=r["step"])
        case = ET.SubElement(s, "testcase", classname=r["step"], name=r["asset"], time=f"{r['seconds']:.3f}")
        if r["status"] == "failed":
            ET.SubElement(case, "failure", message=r["error"] or "failed").text = r["error"]
        elif r["status"] == "skipped":
            ET.SubElement(case, "skipped", message="output current")
    for s in suites.values():
        cases = list(s)
        s.set("tests", str(len(cases)))
        s.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    return ET.tostring(root, encoding="unicode")
