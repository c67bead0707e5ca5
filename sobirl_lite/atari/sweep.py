"""Sweeps: a grid of resumable runs (environments x algorithms x seeds), on local cores or on a Ray cluster.

``python -m sobirl_lite.atari sweep --algos sobirl,drlhf,sac --seeds 0-4 --env minatar:breakout --out DIR``
plans one run per cell of the grid and gives each its own run directory, ``DIR/<game>-<algo>-s<seed>/``, holding
what a single ``train`` writes (``config.json``, ``progress.csv``, ``checkpoint.pt``). ``summary`` and ``plot``
read such a folder and group its runs by ``config.json``.

A run is one call of :func:`run_one`, which is safe to repeat:

* a run directory with ``done.json`` is finished and skipped (unless ``--steps`` asks for more: then it resumes and
  goes on, exactly as if it had been started with the larger budget);
* one with a checkpoint is resumed (``--resume``): the log is cut back to the checkpoint, so no row is lost or
  written twice;
* one with only a partial log (stopped before its first checkpoint) is started again from scratch;
* a lock file (``flock``, released by the kernel when the process dies) keeps two processes off one run.

So an interrupted sweep continues where it stopped when the same command is given again, and a Ray task whose
worker died is simply retried. Where the runs go:

* **local** (default): a pool of worker processes, one per free core (``--workers``), each run in a fresh process
  with ``--threads`` torch threads (default 1);
* **Ray** (``--ray auto`` or ``--ray ADDRESS``): each run is a Ray task asking for ``--cpus-per-run`` CPUs and
  ``--gpus-per-run`` GPUs (0.33 lets three runs share a GPU); a task whose worker dies is retried. The output
  folder must be on a file system every node sees. ``--ray local`` starts a private Ray instance on this machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import fcntl
import json
import multiprocessing as mp
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass

from .config import ALGOS, Config, arm_name
from .env import check_env_id
from .flags import FLAGS, add_settings, config_from_args, out_dir_problem, train_parser

DONE_NAME = "done.json"
LOCK_NAME = ".lock"
PID_NAME = "worker.pid"
SWEEP_NAME = "sweep.json"


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]``; ranges and lists mix (``"0-2,9"``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad seed list {text!r}: use e.g. 0-4 or 0,1,2")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}: the end is below the start")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed list {text!r} repeats a seed")
    return seeds


def env_short_name(env_id: str) -> str:
    """``"minatar:space_invaders"`` -> ``"space_invaders"``; ``"ALE/BeamRider-v5"`` -> ``"beamrider"``."""
    if env_id.startswith("minatar:"):
        return env_id.split(":", 1)[1]
    return env_id.split("/")[-1].split("-")[0].replace("NoFrameskip", "").lower()


def _flag_value(flags, flag: str, default: str) -> str:
    flags = list(flags)
    return flags[flags.index(flag) + 1] if flag in flags else default


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid. ``flags`` are further ``train`` flags, the same for every run of the sweep."""

    env_id: str
    algo: str
    seed: int
    steps: int
    flags: tuple = ()

    @property
    def arm(self) -> str:
        """The algorithm and, for a variant of SoBiRL's (78) term, its flags: ``sobirl``, ``sobirl-uniform``,
        ``sobirl-loo``, ``sobirl-uniform-loo``."""
        return arm_name(self.algo, _flag_value(self.flags, "--hyper-expectation", "policy"),
                        _flag_value(self.flags, "--hyper-baseline", "none"))

    @property
    def name(self) -> str:
        return f"{env_short_name(self.env_id)}-{self.arm}-s{self.seed}"

    def train_argv(self, run_dir: str, resume: bool) -> list[str]:
        """The ``python -m sobirl_lite.atari`` arguments of this run."""
        argv = ["train", "--env", self.env_id, "--algo", self.algo, "--seed", str(self.seed),
                "--steps", str(self.steps), "--out", run_dir, "--no-progress", *self.flags]
        return argv + (["--resume"] if resume else [])


def plan(envs, algos, seeds, steps: int, flags=()) -> list[RunSpec]:
    """Every run of the grid, seed-major, then environment, then algorithm: a sweep stopped early holds whole seeds."""
    return [RunSpec(e, a, s, int(steps), tuple(flags)) for s in seeds for e in envs for a in algos]


def run_state(run_dir: str, steps: int | None = None) -> str:
    """``"done"`` (finished, with at least ``steps`` steps when given), ``"resume"`` (a checkpoint exists: an
    unfinished run, or a finished one that a larger ``--steps`` extends) or ``"fresh"``."""
    done = os.path.join(run_dir, DONE_NAME)
    if os.path.exists(done):
        with open(done) as f:
            if steps is None or json.load(f)["steps"] >= steps:
                return "done"
    if os.path.exists(os.path.join(run_dir, "checkpoint.pt")):
        return "resume"
    return "fresh"


def _clear_partial(run_dir: str) -> None:
    """Remove what a run stopped before its first checkpoint left behind (nothing of it can be resumed)."""
    for name in ("progress.csv", "config.json", "checkpoint.pt.tmp", "tb"):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def run_one(spec: RunSpec, sweep_dir: str, threads: int = 1) -> dict:
    """Run (or resume, or skip) one run of a sweep in this process. Returns ``{"name", "status", "wall_s"}``.

    ``status`` is ``"done"`` (finished now), ``"skipped"`` (finished before), ``"busy"`` (another process holds
    the run) or ``"interrupted"`` (Ctrl-C; checkpoint written).
    """
    import torch

    from .trainers import run

    run_dir = os.path.join(sweep_dir, spec.name)
    os.makedirs(run_dir, exist_ok=True)
    if run_state(run_dir, spec.steps) == "done":
        return {"name": spec.name, "status": "skipped", "wall_s": 0.0}
    lock = open(os.path.join(run_dir, LOCK_NAME), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return {"name": spec.name, "status": "busy", "wall_s": 0.0}
    try:
        with open(os.path.join(run_dir, PID_NAME), "w") as f:
            f.write(str(os.getpid()))
        state = run_state(run_dir, spec.steps)
        if state == "done":
            return {"name": spec.name, "status": "skipped", "wall_s": 0.0}
        if state == "fresh":
            _clear_partial(run_dir)
        if threads > 0:
            torch.set_num_threads(threads)
        argv = spec.train_argv(run_dir, resume=state == "resume")
        cfg = config_from_args(train_parser().parse_args(argv))
        cfg.validate()
        t0 = time.time()
        status = run(cfg, run_dir, resume=state == "resume", command=["python", "-m", "sobirl_lite.atari", *argv])
        wall = time.time() - t0
        if status == "done":
            with open(os.path.join(run_dir, DONE_NAME), "w") as f:
                json.dump({"steps": spec.steps, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                           "last_session_s": round(wall, 1)}, f)
        return {"name": spec.name, "status": status, "wall_s": wall}
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def free_cores() -> int:
    """Cores this process may use minus the current load (rounded), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores - int(round(os.getloadavg()[0])))


def _write_sweep_record(sweep_dir: str, specs, command, backend: str) -> None:
    """``sweep.json``: the grid and every command that worked on it (a resumed sweep appends a session)."""
    from .run_files import hardware_summary
    import torch

    path = os.path.join(sweep_dir, SWEEP_NAME)
    record = {"runs": [], "sessions": []}
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
    record["runs"] = sorted({*record.get("runs", []), *(s.name for s in specs)})
    record["sessions"].append({"command": command, "backend": backend, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                               "hardware": hardware_summary(torch.device("cpu")),
                               "plan": [asdict(s) | {"flags": list(s.flags)} for s in specs]})
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)


def run_local(specs, sweep_dir: str, workers: int, threads: int = 1, log=print) -> list[dict]:
    """Run ``specs`` in a pool of ``workers`` processes, a fresh process per run."""
    ctx = mp.get_context("spawn")
    results = []
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_one, s, sweep_dir, threads): s for s in specs}
        try:
            for fut in cf.as_completed(futures):
                res = fut.result()
                results.append(res)
                log(f"[{len(results)}/{len(specs)}] {res['name']}: {res['status']} ({res['wall_s']:.0f} s)")
        except KeyboardInterrupt:
            # The workers got the same Ctrl-C: each checkpoints and stops. Do not start the queued runs.
            for fut in futures:
                fut.cancel()
            log("interrupted: running runs write their checkpoints; give the same command again to resume")
            raise
    return results


def _start_local_ray(ray, log, attempts: int = 3) -> None:
    """Start a private Ray instance. Ray gives its raylet a fixed 30 s to register, which a heavily loaded machine
    can miss (a bare ``Exception``: "timed out during startup"); such a start is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(include_dashboard=False)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for a startup timeout
            ray.shutdown()
            if attempt == attempts or "timed out during startup" not in str(exc):
                raise
            log(f"Ray did not start in time (attempt {attempt} of {attempts}; the machine is busy): trying again")


def run_ray(specs, sweep_dir: str, address: str, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
            threads: int = 1, max_retries: int = 3, log=print) -> list[dict]:
    """Run ``specs`` as Ray tasks (retried when their worker dies). ``address``: ``"auto"``, ``"local"`` or an
    address such as ``"ray://head:10001"``. A Ray instance already initialised in this process is used as is."""
    import ray

    if not ray.is_initialized():
        if address == "local":
            _start_local_ray(ray, log)
        else:
            ray.init(address=address)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries)(run_one)
    sweep_dir = os.path.abspath(sweep_dir)
    pending = {task.remote(s, sweep_dir, threads): s for s in specs}
    results = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(ready[0])
        res = ray.get(ready[0])
        if res["status"] == "busy":  # another process held it; ask again later
            time.sleep(1.0)
            pending[task.remote(spec, sweep_dir, threads)] = spec
            continue
        results.append(res)
        log(f"[{len(results)}/{len(specs)}] {res['name']}: {res['status']} ({res['wall_s']:.0f} s)")
    return results


def sweep(specs, sweep_dir: str, ray_address: str | None = None, workers: int = 0, threads: int = 1,
          cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, command=None, log=print) -> list[dict]:
    """Run the grid ``specs`` into ``sweep_dir`` (skipping finished runs, resuming checkpointed ones)."""
    os.makedirs(sweep_dir, exist_ok=True)
    todo = [s for s in specs if run_state(os.path.join(sweep_dir, s.name), s.steps) != "done"]
    backend = f"ray:{ray_address}" if ray_address else f"local:{workers or free_cores()}"
    _write_sweep_record(sweep_dir, specs, command or list(sys.argv), backend)
    log(f"sweep {sweep_dir}: {len(specs)} runs, {len(specs) - len(todo)} already finished, {len(todo)} to run "
        f"({backend})")
    if not todo:
        return []
    if ray_address:
        return run_ray(todo, sweep_dir, ray_address, cpus_per_run, gpus_per_run, threads, log=log)
    return run_local(todo, sweep_dir, workers or free_cores(), threads, log=log)


def add_sweep_parser(sub) -> argparse.ArgumentParser:
    """The ``sweep`` subcommand, added to the subparsers ``sub``; ``train``'s optional settings (:data:`.flags.FLAGS`)
    are passed to every run."""
    p = sub.add_parser("sweep", help="run a grid of algorithms x seeds x environments (see 'sweep --help')",
                       description="Run every combination of --algos, --seeds and --env as resumable runs in "
                                   "DIR/<game>-<algo>-s<seed>/, locally (one process per free core) or on Ray. "
                                   "Give the same command again to resume; finished runs are skipped.")
    p.add_argument("--algos", default="sobirl,drlhf,sac", help="comma-separated algorithms (default all three)")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,1,2 (default 0-4)")
    p.add_argument("--env", default="minatar:breakout",
                   help="comma-separated environments, e.g. minatar:breakout,minatar:space_invaders or "
                        "ALE/BeamRider-v5 (default minatar:breakout)")
    p.add_argument("--steps", type=int, default=None, help="agent steps per run (default: the environment's)")
    p.add_argument("--out", required=True, help="sweep folder (created; reused to resume)")
    p.add_argument("--workers", type=int, default=0, help="local parallel runs; 0 = one per free core (default)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run each run as a Ray task: 'auto' (running cluster), 'local' (start one here) or an address")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray GPUs per run, e.g. 0.33 (default 0)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="device of every run")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16"),
                   help="precision of every run's encoders (see 'train --help'; default fp32)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    add_settings(p.add_argument_group("settings passed to every run (see 'train --help')"))
    return p


def main_from_args(args, argv) -> int:
    """Entry point of ``sweep`` (called by :func:`~.cli.main` with the parsed ``args`` and the raw ``argv``)."""
    try:
        seeds = parse_seeds(args.seeds)
        algos = [a.strip() for a in args.algos.split(",") if a.strip()]
        bad = [a for a in algos if a not in ALGOS]
        if bad or not algos:
            raise ValueError(f"unknown algorithm(s) {bad} in --algos; choose from {', '.join(ALGOS)}")
        variant = [f for f in ("hyper_expectation", "hyper_baseline") if getattr(args, f, None) is not None]
        if variant and algos != ["sobirl"]:
            raise ValueError(f"--{variant[0].replace('_', '-')} changes SoBiRL's (78) term: sweep it with "
                             f"--algos sobirl alone (got --algos {','.join(algos)})")
        if args.workers < 0:
            raise ValueError(f"--workers {args.workers}: give the number of parallel runs (0 = one per free core)")
        if args.cpus_per_run <= 0 or args.gpus_per_run < 0:
            raise ValueError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0 (got {args.cpus_per_run} and "
                             f"{args.gpus_per_run})")
        envs = [e.strip() for e in args.env.split(",") if e.strip()]
        extra = []
        for flag, field, _, _ in FLAGS:
            value = getattr(args, field)
            if value is not None:
                extra += [flag, str(value)]
        if args.device:
            extra += ["--device", args.device]
        if args.precision:
            extra += ["--precision", args.precision]
        threads = args.threads if args.threads is not None else 1
        if args.threads is None:
            extra += ["--threads", "1"]
        if not envs:
            raise ValueError("--env names no environment; give e.g. minatar:breakout or ALE/BeamRider-v5")
        steps = {}
        for env in envs:
            check_env_id(env)
            steps[env] = args.steps if args.steps is not None else Config.for_env(env).total_steps
            Config.for_env(env, total_steps=steps[env]).validate()
        specs = [s for seed in seeds for env in envs for s in plan([env], algos, [seed], steps[env], extra)]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = out_dir_problem(args.out, create=not args.dry_run)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.dry_run:
        for s in specs:
            print(f"{s.name:32s} {run_state(os.path.join(args.out, s.name), s.steps)}")
        return 0
    command = ["python", "-m", "sobirl_lite.atari", *argv]
    try:
        results = sweep(specs, args.out, ray_address=args.ray, workers=args.workers, threads=threads,
                        cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run, command=command)
    except KeyboardInterrupt:
        return 130
    if any(r["status"] == "interrupted" for r in results):
        return 130
    unfinished = [s.name for s in specs if run_state(os.path.join(args.out, s.name), s.steps) != "done"]
    if unfinished:
        print(f"unfinished runs: {', '.join(unfinished)}", file=sys.stderr)
        return 1
    print(f"sweep done: {len(specs)} runs in {args.out}")
    return 0
