"""Schemathesis over every route of the HTTP API: no 5xx, and every answer as the OpenAPI schema says
(documented status codes, content types, response bodies and headers); a request the schema forbids
must be refused. Generation stays cheap through small limits in the fuzzed server's settings: the
bounds are part of the contract, so a request over them is a 4xx, not a long job.

`POST /sdapi/v1/options` is fuzzed on a server of its own (it changes the settings the other routes
run under), which must then still run a small job. A stateful run follows the links schemathesis
infers between routes (e.g. a script name from `GET /scripts` into `POST /txt2img`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.core.parameters import ParameterLocation

from tests.app_support import app_factory, local_client

SAMPLERS = ["Euler", "Euler a", "DPM++ 2M", "DDIM", "LMS", "Heun", "UniPC", "DPM++ 2M SDE"]
SCHEDULES = ["Automatic", "Uniform", "Karras", "Exponential", "SGM Uniform"]
LIMITS = {"max_steps": 3, "max_batch_size": 2, "max_batch_count": 2, "max_image_size": 128}
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
    st_checks.negative_data_rejection,
    st_checks.unsupported_method,
    st_checks.missing_required_header,
]
# CI's bound; SUMI_FUZZ_EXAMPLES=300 for a deep run (the figures in docs/security.md).
EXAMPLES = int(os.environ.get("SUMI_FUZZ_EXAMPLES", "20"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
STATEFUL = settings(
    max_examples=int(EXAMPLES * 1.5),
    stateful_step_count=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
OPTIONS_ROUTE = "/sdapi/v1/options"
REQUESTS: Counter[str] = Counter()  # requests sent per route, summed in docs/security.md
STATUSES: Counter[tuple[str, int]] = Counter()
STATEFUL_STEPS: list[str] = []


def _server(data: Path) -> Iterator[object]:
    """A `--nowebui` API server (the fuzz client's Host, `testserver`, allowed) with small limits."""
    from webui import build_server

    data.mkdir(parents=True, exist_ok=True)
    (data / "config.json").write_text(json.dumps(LIMITS))
    with app_factory() as make:
        app = make(data, "--nowebui", "--allowed-hosts", "testserver")
        yield build_server(app)


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    yield from _server(tmp_path_factory.mktemp("fuzz") / "data")


@pytest.fixture(scope="module")
def options_server(tmp_path_factory):
    yield from _server(tmp_path_factory.mktemp("fuzz-options") / "data")


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_server).exclude(
        method="POST", path=OPTIONS_ROUTE
    )


def _operation(server, method: str, path: str, fold: bool = False):
    """One operation of `server`'s schema (driven by hypothesis directly: a filtered schema under
    `from_fixture` skips the other operations inside hypothesis, which a long run reports as flaky)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", server)
    if fold:
        schema.hook("map_case")(_positive_within_limits)
    return schema[path][method]


def _cases(operation, *modes: GenerationMode):
    return st.one_of(*[operation.as_strategy(generation_mode=mode) for mode in modes])


def _positive_within_limits(_context, case):
    """Fold a schema-valid body into the limits; a body made to break the schema is left as it is
    (folding it could make it valid, and the server would then rightly accept it)."""
    meta = getattr(case, "meta", None)
    if meta is not None and meta.is_negative_at(ParameterLocation.BODY):
        return case
    case.body = _within_limits(case.body)
    return case


def _within_limits(body):
    if not isinstance(body, dict):
        return body
    folds = {
        "width": lambda v: 64 + (v // 8) % 9 * 8,
        "height": lambda v: 64 + (v // 8) % 9 * 8,
        "steps": lambda v: 1 + v % LIMITS["max_steps"],
        "batch_size": lambda v: 1 + v % LIMITS["max_batch_size"],
        "n_iter": lambda v: 1 + v % LIMITS["max_batch_count"],
        "hr_second_pass_steps": lambda v: v % LIMITS["max_steps"],
    }
    for key, names in (("sampler_name", SAMPLERS), ("sampler_index", SAMPLERS), ("scheduler", SCHEDULES)):
        value = body.get(key)
        if isinstance(value, str) and value:  # a random string names no sampler: pick one by its length
            body[key] = names[len(value) % len(names)]
    for key, fold in folds.items():
        value = body.get(key, 1)  # a field left out takes its default (512 wide, 20 steps): over the limits
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            body[key] = fold(value)
    return body


# Filtered here: a filter on the fixture's schema is not applied by `from_fixture`.
api = schemathesis.pytest.from_fixture("api_schema").exclude(method="POST", path=OPTIONS_ROUTE)


def _call(case) -> None:
    REQUESTS[case.operation.label] += 1
    response = case.call()
    STATUSES[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


@api.parametrize()
@FUZZ
def test_every_route_answers_as_its_schema_says(case):
    assert case.operation.label != f"POST {OPTIONS_ROUTE}", "POST /options has a server of its own"
    _call(case)


def test_fuzzed_settings_writes_answer_as_the_schema_says(options_server):
    """`POST /options`, valid and schema-breaking bodies, on a server of its own."""
    operation = _operation(options_server, "POST", OPTIONS_ROUTE)

    @given(case=_cases(operation, GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    @FUZZ
    def run(case):
        _call(case)

    run()


def test_fuzzed_jobs_within_the_limits_answer_as_the_schema_says(fuzzed_server):
    """`POST /txt2img` with its sizes, steps and batch folded into the server's limits, so fuzzed values
    reach the sampler, the scripts and the savers instead of stopping at the limit checks."""
    operation = _operation(fuzzed_server, "POST", "/sdapi/v1/txt2img", fold=True)

    @given(case=_cases(operation, GenerationMode.POSITIVE))
    @settings(FUZZ, max_examples=EXAMPLES * 3)
    def run(case):
        _call(case)

    run()


def test_the_server_still_generates_after_its_settings_were_fuzzed(options_server):
    client = local_client(options_server)
    body = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text


def test_stateful_sequences_of_calls_answer_as_the_schema_says(fuzzed_server):
    """Chains along the schema's links (a sampler, scheduler or script from its list into a job; a job's
    image into png-info) and those schemathesis infers, with jobs folded into the limits."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_server).exclude(
        method="POST", path=OPTIONS_ROUTE
    )
    schema.hook("map_case")(_positive_within_limits)
    machine = schema.as_state_machine()

    class Sequences(machine):  # type: ignore[misc, valid-type]
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            REQUESTS[case.operation.label] += 1
            STATEFUL_STEPS.append(case.operation.label)
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Sequences.run(settings=STATEFUL)
    assert STATEFUL_STEPS, "the state machine made no calls"


def test_zz_report_the_number_of_fuzzed_requests(capsys):
    """Not an assertion on speed: prints the request count the docs quote (`-s` to see it)."""
    with capsys.disabled():
        print(f"\nschemathesis: {sum(REQUESTS.values())} requests over {len(REQUESTS)} operations")
        print(f"stateful: {len(STATEFUL_STEPS)} calls: {Counter(STATEFUL_STEPS).most_common()}")
        for (label, status), n in sorted(STATUSES.items()):
            print(f"  {label}: {status} x{n}")
    assert REQUESTS, "the fuzz tests above did not run"
    assert STATUSES[("POST /sdapi/v1/txt2img", 200)] > 0, "no fuzzed job reached the sampler"
