"""``dcequant-train {cnn,punet,dose} --out DIR [--device ...] [--epochs N] [--seed S]``.

Every trainer module exposes ``add_arguments(parser)`` and ``train(args) -> int``; this
entry point only dispatches. The command line that produced a weight file is recorded in
its model card (``training.command``), so the shipped weights are reproducible.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

#: sub-command -> module implementing ``add_arguments(parser)`` and ``train(args)``
TRAINERS: dict[str, str] = {
    "cnn": "bidsapp.nets.training.cnn",
    "punet": "bidsapp.nets.training.punet",
    "dose": "bidsapp.nets.training.dose",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``dcequant-train`` parser with one sub-command per registered trainer."""
    parser = argparse.ArgumentParser(
        prog="dcequant-train",
        description="Train a dcequant network on simulated data and write its state dict and model card.",
    )
    commands = parser.add_subparsers(dest="network", required=True, metavar="{" + ",".join(TRAINERS) + "}")
    for name, module in TRAINERS.items():
        trainer = import_module(module)
        sub = commands.add_parser(name, help=(trainer.__doc__ or "").strip().splitlines()[0])
        sub.add_argument("--out", required=True, help="directory for <name>.pt and <name>.json")
        sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        sub.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
        trainer.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen trainer; return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command = "dcequant-train " + " ".join(argv)
    return import_module(TRAINERS[args.network]).train(args)


if __name__ == "__main__":
    sys.exit(main())
