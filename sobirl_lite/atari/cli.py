"""Command line: ``python -m sobirl_lite.atari train --algo {sobirl,drlhf,sac} --steps N --seed S --out runs/NAME``.

Every :class:`~.config.Config` field a run may need to change has a flag; the defaults are the settings of Appendix I.2 of Yang et al.
(the paper's budget: 4.3M steps, which needs a GPU). A CPU smoke run scales everything down, e.g.::

    python -m sobirl_lite.atari train --algo sobirl --steps 3000 --out runs/smoke \\
        --learning-starts 1000 --inner-steps 500 --buffer-size 5000 --initial-pairs 20 --warmup-epochs 2 \\
        --pairs-per-iter 4 --pref-buffer-size 100 --hyper-warmup-steps 1000 --batch-size 32

Exit status: 0 when the run reached ``--steps``, 130 when stopped by Ctrl-C (checkpoint written; continue with the
same command plus ``--resume``), 2 for invalid flags or an unusable checkpoint.
"""
from __future__ import annotations

import argparse
import sys

from .flags import add_train_parser, config_from_args
from .sweep import add_sweep_parser, main_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sobirl_lite.atari",
        description="Practical SoBiRL, DRLHF and SAC on Atari BeamRider (Appendix I of Yang et al.): train, log, checkpoint, resume.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(sub)
    add_sweep_parser(sub)
    for name, text in (("summary", "print what runs reached: return of the last games (mean +- s.e.), preference "
                                   "accuracy, steps, wall time"),
                       ("plot", "draw the four-panel figure of runs (return, episode length, preference accuracy, "
                                "reward loss) to a PNG")):
        q = sub.add_parser(name, help=text, description=text + ". RUN is a run directory or a sweep folder of run "
                                                               "directories; runs are grouped by (environment, "
                                                               "algorithm) and several seeds aggregated.")
        q.add_argument("runs", nargs="+", metavar="RUN", help="run directory or sweep folder")
        if name == "summary":
            q.add_argument("--last", type=int, default=10,
                           help="games per run that the final return averages (default 10)")
        else:
            q.add_argument("--out", default="runs.png", help="PNG file to write (default runs.png)")
            q.add_argument("--window", type=int, default=5, help="running mean over this many games (default 5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # no command: say what there is instead of an argparse error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command in ("summary", "plot"):
        from .report import main_plot, main_summary

        try:
            if args.command == "summary":
                return main_summary(args.runs, last=args.last)
            return main_plot(args.runs, args.out, window=args.window)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "sweep":
        return main_from_args(args, argv)
    try:
        cfg = config_from_args(args)
        cfg.validate()
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2 and the usage line
    from .checkpoint import CheckpointError
    from .trainers import run

    try:
        status = run(cfg, args.out, resume=args.resume, command=["python", "-m", "sobirl_lite.atari", *argv])
    except (CheckpointError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if status == "interrupted":
        print(f"interrupted: checkpoint written to {args.out}; continue with the same command plus --resume",
              file=sys.stderr)
        return 130
    print(f"done: {cfg.total_steps} steps; log in {args.out}/progress.csv")
    return 0
