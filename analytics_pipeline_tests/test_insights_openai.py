"""The GPT paths of `insights` and of the findings (their embeddings, and answers to questions), through the real
OpenAI client and dagster-openai, against a local server."""

import json
import re
import time
from contextlib import nullcontext

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_openai import OpenAIResource
from markdown_it import MarkdownIt

from analytics_pipeline.assets.insights import GROUNDED_CHECK, insights
from analytics_pipeline_tests.chat_server import chat_server
from analytics_pipeline_tests.conftest import drop_samples, emptied_warehouse, load_uploads, refresh_days, resources
from analytics_pipeline_tests.http_server import Request, serve


@pytest.fixture(scope="module")
def metrics_ready(warehouse_url, tmp_path_factory):
    """The billing sample loaded and every analytic table computed once for this module."""
    from analytics_pipeline.resources import UploadFolders

    engine = emptied_warehouse(warehouse_url)
    root = tmp_path_factory.mktemp("insights")
    folders = UploadFolders(uploads=str(root / "u"), archive=str(root / "a"), quarantine=str(root / "q"))
    folders.uploads_path.mkdir()
    with dg.DagsterInstance.ephemeral() as instance:
        load_uploads(instance, folders, drop_samples(folders, ["api_billing.csv"]))
        refresh_days(instance, "2025-05-01", "2026-11-20")
    return engine, folders


def _run(
    folders, base_url: str, timeout_seconds: float = 60.0, api_key: str = "test-key", instance=None
) -> dg.ExecuteInProcessResult:
    openai = OpenAIResource(api_key=api_key, base_url=base_url)
    config = {"ops": {"insights": {"config": {"timeout_seconds": timeout_seconds}}}}
    with dg.DagsterInstance.ephemeral() if instance is None else nullcontext(instance) as instance:
        return dg.materialize(
            [insights], instance=instance, resources={**resources(folders), "openai": openai}, run_config=config
        )


def _latest(engine) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.text("SELECT * FROM analytics.insights ORDER BY insight_id DESC LIMIT 1")).mappings().one()
        )


def _grounded_reply(body: dict) -> tuple[int, str]:
    """Quote a money figure that is present in the facts the prompt carries."""
    prompt = body["messages"][-1]["content"]
    figure = re.search(r"\d+\.\d\d\b", prompt).group(0)
    return 200, f"Revenue held up: the figure to watch is {figure}. Keep an eye on the top movers."


def test_gpt_narrative_is_stored_with_usage_in_metadata(metrics_ready):
    engine, folders = metrics_ready
    with chat_server(_grounded_reply) as (base_url, received):
        result = _run(folders, base_url)
    assert len(received) == 1
    assert received[0]["messages"][0]["role"] == "system"
    stored = _latest(engine)
    assert stored["writer"] == "openai:gpt-4o-mini"
    assert stored["narrative"].startswith("Revenue held up")
    assert list(stored["ungrounded"]) == []
    metadata = result.asset_materializations_for_node("insights")[0].metadata
    assert metadata["openai.gpt-4o-mini.total_tokens"].value == 200
    assert metadata["openai.gpt-4o-mini.calls"].value == 1
    assert "llm_latency_s" in metadata
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == GROUNDED_CHECK and check.passed


def test_a_planted_wrong_number_is_caught_and_marked(metrics_ready):
    engine, folders = metrics_ready
    with chat_server(lambda body: (200, "Revenue jumped 987,654.32 last week.")) as (base_url, _):
        result = _run(folders, base_url)
    stored = _latest(engine)
    assert "987,654.32" in list(stored["ungrounded"])
    assert "987,654.32 [unverified]" in stored["narrative"]
    [check] = result.get_asset_check_evaluations()
    assert not check.passed


def test_markdown_in_a_completion_is_shown_as_text_in_the_metadata(metrics_ready):
    """GPT writes from facts holding region and product names out of files, and may echo what they say."""
    engine, folders = metrics_ready
    hostile = "See [the report](javascript:alert(1)) <img src=x onerror=alert(1)>."
    with chat_server(lambda body: (200, hostile)) as (base_url, _):
        result = _run(folders, base_url)
    assert _latest(engine)["narrative"] == hostile  # stored as written
    shown = result.asset_materializations_for_node("insights")[0].metadata["narrative"].value
    html = MarkdownIt("commonmark").render(shown)
    assert "<a " not in html and "<img" not in html and "[the report](javascript:alert(1))" in html


def test_server_errors_are_retried_then_the_offline_writer_takes_over(metrics_ready):
    engine, folders = metrics_ready
    with chat_server(lambda body: (503, "overloaded")) as (base_url, received):
        result = _run(folders, base_url)
    assert result.success
    assert len(received) == 3  # the first try and the client's two retries with backoff
    stored = _latest(engine)
    assert stored["writer"] == "offline"
    assert list(stored["ungrounded"]) == []
    metadata = result.asset_materializations_for_node("insights")[0].metadata
    assert metadata["llm"].value.startswith("fallback after InternalServerError")


def test_a_rate_limit_is_retried_and_the_retry_is_used(metrics_ready):
    engine, folders = metrics_ready
    answers = iter([(429, "rate limited"), None])

    def reply(body):
        return next(answers) or _grounded_reply(body)

    with chat_server(reply) as (base_url, received):
        _run(folders, base_url)
    assert len(received) == 2
    assert _latest(engine)["writer"] == "openai:gpt-4o-mini"


def test_a_server_that_times_out_falls_back_to_the_offline_writer(metrics_ready):
    engine, folders = metrics_ready

    def slow(body):
        time.sleep(2.5)
        return _grounded_reply(body)

    with chat_server(slow) as (base_url, received):
        result = _run(folders, base_url, timeout_seconds=0.5)
    assert len(received) == 3  # the first try and two retries, each cut at the timeout
    assert _latest(engine)["writer"] == "offline"
    assert result.asset_materializations_for_node("insights")[0].metadata["llm"].value.startswith(
        "fallback after APITimeoutError"
    )


API_KEY = "sk-proj-Qm7rT2vX9kLp4Wz8Yc3Nb6Hd1Fg5Js0a"


def _header(request: Request, name: str) -> str:
    return {key.lower(): value for key, value in request.headers.items()}[name.lower()]


def _refuse_and_echo_credentials(request: Request):
    """A 401 as a provider may send it: the message quotes the key and the request's Authorization header."""
    authorization = _header(request, "Authorization")
    message = f"Incorrect API key provided: {API_KEY}. Request headers: Authorization: {authorization}"
    body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    return 401, {"Content-Type": "application/json"}, json.dumps(body).encode()


def test_a_refused_key_echoed_by_the_provider_is_stored_nowhere(metrics_ready, instance):
    engine, folders = metrics_ready
    with serve(_refuse_and_echo_credentials) as (base_url, received):
        result = _run(folders, f"{base_url}/v1", api_key=API_KEY, instance=instance)
    assert result.success
    assert len(received) == 1  # a 401 is not retried
    assert _header(received[0], "Authorization") == f"Bearer {API_KEY}"
    secret_part = API_KEY.removeprefix("sk-proj-")

    stored = _latest(engine)
    assert stored["writer"] == "offline"
    metadata = result.asset_materializations_for_node("insights")[0].metadata
    assert metadata["llm"].value.startswith("fallback after AuthenticationError")
    assert "Incorrect API key provided" in metadata["llm"].value  # the reason is kept, only the secrets go
    event_log = [dg.serialize_value(record) for record in instance.all_logs(result.run_id)]
    assert any("AuthenticationError" in event for event in event_log)
    for where, text in (
        ("insights row", repr(stored)),
        ("metadata", repr({key: value.value for key, value in metadata.items()})),
        ("event log", "\n".join(event_log)),
    ):
        assert secret_part not in text, where
        assert "Bearer sk" not in text, where


# The findings: embedded through the embeddings API, and a question answered by GPT from them ------------------------

QUESTION = "why did orders drop in February?"  # the billing sample's API outage, planted on 2026-02-11


def _index(folders, base_url: str) -> dg.MaterializeResult:
    from analytics_pipeline.assets.findings import findings_index

    openai = OpenAIResource(api_key="test-key", base_url=base_url)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([findings_index], instance=instance, resources={**resources(folders), "openai": openai})
    return result.asset_materializations_for_node("findings_index")[0].metadata


def _ask(folders, base_url: str, question: str = QUESTION):
    from analytics_pipeline.jobs import ask_findings_job

    openai = OpenAIResource(api_key="test-key", base_url=base_url)
    defs = dg.Definitions(jobs=[ask_findings_job], resources={**resources(folders), "openai": openai})
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("ask_findings_job").execute_in_process(
            instance=instance, run_config={"ops": {"ask_findings": {"config": {"question": question}}}}
        )
    return result.output_for_node("ask_findings")


def _quote_the_first_finding(body: dict) -> tuple[int, str]:
    """An answer whose numbers are the first finding's, as the prompt carries them."""
    facts = json.loads(body["messages"][-1]["content"].split("\n", 1)[1])
    first = facts["findings"][0]
    return 200, f"Orders fell on {first['day']}: {first['numbers']['actual']} against {first['numbers']['expected']}."


def test_findings_are_embedded_by_the_api_and_a_question_gets_a_grounded_answer(metrics_ready):
    from analytics_pipeline.analysis.embedding import DEFAULT_OPENAI_MODEL, OFFLINE_MODEL

    engine, folders = metrics_ready
    with chat_server(_quote_the_first_finding) as (base_url, received):
        metadata = _index(folders, base_url)
        [embedded] = received  # every finding in one request; the offline vectors need no API
        with engine.connect() as conn:
            findings = conn.execute(
                sa.text("SELECT count(DISTINCT (kind, day, segment, metric)) FROM analytics.findings")
            ).scalar_one()
        assert len(embedded["input"]) == findings > 0
        assert metadata["findings_per_model"].value == (
            f"{OFFLINE_MODEL}: {findings} of {findings}, {DEFAULT_OPENAI_MODEL}: {findings} of {findings}")
        assert metadata[f"openai.{DEFAULT_OPENAI_MODEL}.calls"].value == 1  # dagster-openai's usage accounting

        _index(folders, base_url)
        assert len(received) == 1  # nothing changed: nothing is embedded again

        answer = _ask(folders, base_url)
    question_embedding, chat = received[1:]
    assert question_embedding["input"] == [QUESTION] and question_embedding["model"] == DEFAULT_OPENAI_MODEL
    assert answer.searched_with == DEFAULT_OPENAI_MODEL
    top = answer.findings[0]
    assert (str(top["day"]), top["kind"], top["segment"], top["metric"]) == ("2026-02-11", "anomaly", "total", "orders")
    assert top["text"] in chat["messages"][-1]["content"]
    numbers = top["numbers"]
    assert answer.answer == f"Orders fell on 2026-02-11: {numbers['actual']} against {numbers['expected']}."
    assert answer.ungrounded == []


def test_an_answer_quoting_a_number_from_nowhere_is_not_shown(metrics_ready):
    _, folders = metrics_ready
    with chat_server(lambda body: (200, "Orders fell by 12,345.67 on 2026-02-11.")) as (base_url, _):
        _index(folders, base_url)
        answer = _ask(folders, base_url)
    assert answer.answer is None
    assert answer.ungrounded == ["12,345.67"]
    assert "answer is not shown: it quoted numbers that are not in these findings" in answer.note
    assert str(answer.findings[0]["day"]) == "2026-02-11"  # the findings are still returned
    assert "12,345.67" not in answer.as_text().split("No written answer.")[0]


def test_when_the_embeddings_api_is_down_questions_are_searched_offline(metrics_ready, monkeypatch):
    from analytics_pipeline.analysis.embedding import EMBEDDING_MODEL_ENV, OFFLINE_MODEL

    _, folders = metrics_ready
    monkeypatch.setenv(EMBEDDING_MODEL_ENV, "text-embedding-3-large")  # a model no finding has a vector of yet
    with chat_server(_quote_the_first_finding, embed=lambda body: (503, "overloaded")) as (base_url, received):
        metadata = _index(folders, base_url)
        answer = _ask(folders, base_url)
    assert len([body for body in received if "input" in body]) == 3  # the first try and the client's two retries
    assert metadata["openai_embeddings"].value.startswith("failed after retries (InternalServerError")
    assert "text-embedding-3-large: " not in metadata["findings_per_model"].value
    assert answer.searched_with.startswith(f"{OFFLINE_MODEL} (text-embedding-3-large has embedded 0 of ")
    assert str(answer.findings[0]["day"]) == "2026-02-11"
    assert answer.answer is not None  # the chat API is up: GPT still answers from what the offline search found
