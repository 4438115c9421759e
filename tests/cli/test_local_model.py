"""End to end on the embedded SmolLM2 model: ``optillm run moa`` with no provider configured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optillm_cli import ExitCode
from optillm_cli._commands import CUT_ANSWER_NOTICE
from optillm_cli._providers import LOCAL_NOTICE
from tests.cli.conftest import clean_environ
from tests.cli.test_subprocess import ROOT

pytestmark = pytest.mark.local_model


def test_moa_runs_offline_on_the_embedded_model() -> None:
    argv = [sys.executable, "-m", "optillm_cli", "run", "moa", "What is 12 + 7?", "--json", "--max-tokens", "24"]
    # Candidates cut off at 24 tokens are kept, so the run cannot fail for want of a finished candidate.
    argv += ["--set", "truncated_candidates=keep", "--set", "critique_max_tokens=48"]
    done = subprocess.run(argv, env=clean_environ(), cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == ExitCode.OK, done.stderr
    data = json.loads(done.stdout)
    # At 24 tokens the tiny model's answer may well be cut off; the run then says so on stderr.
    cut = data["finish_reason"] == "length"
    assert done.stderr == LOCAL_NOTICE + "\n" + (CUT_ANSWER_NOTICE + "\n" if cut else "")
    assert data["strategy"] == "moa"
    assert data["model"] == "smollm2"
    assert data["answer"].strip()
    assert data["llm_calls"] >= 3  # candidates, critique, synthesis
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 3 * 24 + 48 + 24 + 3 * 24  # every call kept to its limit (+ refills)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
