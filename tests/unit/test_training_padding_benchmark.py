"""`benchmarks/padding.py` runs offline and length grouping cuts the padding share on its mix of photo shapes."""

import re
import runpy
import sys
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[2]


def test_group_by_length_pads_less_than_random_batches(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["padding.py", "--rows", "400"])
    runpy.run_path(str(REPO_ROOT / "benchmarks" / "padding.py"), run_name="__main__")
    rows = re.findall(r"^\| (4|16) \| (\d+)-(\d+) \| ([\d.]+)% \| ([\d.]+)% \|", capsys.readouterr().out, re.MULTILINE)
    assert [row[0] for row in rows] == ["4", "16"]
    for _, shortest, longest, random_share, grouped_share in rows:
        assert int(shortest) < int(longest)  # photo shapes give different token counts
        assert float(grouped_share) < float(random_share) / 3
