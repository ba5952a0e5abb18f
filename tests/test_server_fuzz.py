"""A schema fuzz of the live server: every operation of its OpenAPI spec, valid and invalid data, no 5xx.

schemathesis 4 (Python API): the schema is loaded from the running server, and
each operation's Hypothesis strategy (positive: data the schema allows;
negative: data it forbids) is drawn a bounded number of times and sent over
loopback. Bodies from a 5xx are collected and reported together. Generation is
derandomized, so the suite is reproducible; drop ``derandomize`` locally to
explore (a random run found the tiny-temperature overflow that ``pick`` now
handles).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from server_fixture import quick_home, running_server

EXAMPLES = 25
SERVED = ("auto", "parent", "pico-parent")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    with running_server(quick_home(tmp_path_factory)) as url:
        yield url


def _fuzz(operation, mode: GenerationMode, base_url: str, failures: list) -> int:
    sent = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        if isinstance(case.body, dict) and len(sent) % 2 == 0:
            # Random model names are all 404s; every other case names a served model, so generation is fuzzed too.
            case.body["model"] = SERVED[len(sent) // 2 % len(SERVED)]
        response = case.call(base_url=base_url, timeout=60)
        sent.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{operation.label} ({mode}): {response.status_code} {response.text[:300]}")

    try:
        run()
    except Unsatisfiable:  # nothing to break: an operation without parameters or body has no negative data
        assert mode == GenerationMode.NEGATIVE, operation.label
    return len(sent)


def test_schema_fuzz_finds_no_server_error(base_url):
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/completions", "POST /v1/chat/completions", "GET /v1/models"} <= labels
    failures: list[str] = []
    sent = sum(_fuzz(op, mode, base_url, failures) for op in operations
               for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    assert sent >= len(operations) * EXAMPLES // 2
    assert not failures, "\n".join(failures)
