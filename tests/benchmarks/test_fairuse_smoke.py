"""benchmarks/fairuse.py runs end to end with tiny sizes and writes well-formed JSON (nothing here is timed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_fair_use_benchmark_runs(tmp_path, db):
    args = ["--users", "60", "--rows", "600", "--running", "20", "--iterations", "20"]
    if db == "postgresql":
        from tests.support.postgres import postgres_server
        server = postgres_server()
        url = server.__enter__()
        args += ["--db-url", url]
    try:
        out = tmp_path / "fairuse.json"
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fairuse.py"), *args, "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        if db == "postgresql":
            server.__exit__(None, None, None)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "fairuse" and doc["command"].startswith("benchmarks/fairuse.py")
    results = doc["results"]
    assert results["database"] == ("sqlite" if db == "sqlite" else "postgresql+psycopg2")
    assert results["ledger_rows"] == 600 and results["users"] == 60
    for name in ("caps and budget", "no limits"):
        s = results["ms"][name]
        assert s["n"] == 20 and math.isfinite(s["p95"]) and s["p50"] <= s["p95"]
    assert "| caps and budget |" in proc.stdout
