"""A/B of the list import: this checkout against another revision, run by turns in one session.

    .venv/bin/python bench/ab_import.py --base REV [--rows 400000] [--existing 80000] [--rounds 3]

The machine is shared and its speed swings by a quarter within minutes, so two figures taken
minutes apart say little. This runs `bench/import_list.py --skip-dlt --skip-copy` for the base
(checked out into a temporary git worktree) and for this checkout by turns, which goes first
alternating, and prints each
run, the medians, and the median of the per-round ratios (HEAD over base; below 1 is faster).
Never run as a test.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_WALL = re.compile(r"^== ours: .* in ([\d.]+) s", re.MULTILINE)
_CPU = re.compile(r"CPU seconds: (.*); total ([\d.]+)")


def run(tree: Path, rows: int, existing: int) -> tuple[float, float, str]:
    out = subprocess.run([sys.executable, str(tree / "bench" / "import_list.py"), "--rows", str(rows),
                          "--existing", str(existing), "--skip-dlt", "--skip-copy"],
                         cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True, check=True).stdout
    wall, cpu = _WALL.search(out), _CPU.search(out)
    if wall is None or cpu is None:
        raise RuntimeError(f"no figures in the bench's output:\n{out[-2000:]}")
    return float(wall.group(1)), float(cpu.group(2)), cpu.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (a commit, a tag)")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--existing", type=int, default=80_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm_ab_") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            figures: dict[str, list[tuple[float, float]]] = {"base": [], "head": []}
            for round_ in range(args.rounds):
                for name, tree in (("base", base), ("head", ROOT)) if round_ % 2 == 0 else \
                        (("head", ROOT), ("base", base)):
                    wall, cpu, parts = run(tree, args.rows, args.existing)
                    figures[name].append((wall, cpu))
                    print(f"round {round_ + 1} {name}: {wall:.1f} s, {cpu:.1f} CPU-s ({parts})", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    for name, runs in figures.items():
        print(f"{name}: median {statistics.median(w for w, _ in runs):.1f} s, "
              f"{statistics.median(c for _, c in runs):.1f} CPU-s over {len(runs)} runs")
    walls = [h[0] / b[0] for h, b in zip(figures["head"], figures["base"])]
    cpus = [h[1] / b[1] for h, b in zip(figures["head"], figures["base"])]
    print(f"head / base, median of the rounds: wall {statistics.median(walls):.2f}, CPU {statistics.median(cpus):.2f}")


if __name__ == "__main__":
    main()
