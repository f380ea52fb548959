"""A representative share of the contract tests, against API + 2 workers whose every database
connection (migrations included) goes through PgBouncer in transaction pooling mode: a server
connection is lent for one transaction, so a statement prepared on it in one transaction is gone
(or someone else's) in the next, and no session state survives. .ci/pgbouncer.sh starts it.

The tests are the other modules' own, collected here a second time: this module's `server`
fixture overrides the session's, and `client` and `assistant` are built on it. The whole contract
suite a third time would add minutes to CI for little: these cover each path to the database
(the API's SQLAlchemy sessions and run store, the run loop's claim and rounds, responses, file
ingestion, search)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ScriptedModel, Server, start_distributed, stop
from tests.contract.test_conversations import test_add_list_and_paginate  # noqa: F401
from tests.contract.test_files import test_upload_list_content_delete  # noqa: F401
from tests.contract.test_quickstart import test_quickstart  # noqa: F401
from tests.contract.test_responses import (  # noqa: F401
    test_background_response_polled_and_replayed,
    test_conversation_holds_both_turns,
    test_function_call_continued_with_previous_response_id,
    test_plain_response,
    test_streamed_response_with_the_sdk_helper,
)
from tests.contract.test_responses_api import test_one_response_at_a_time_on_a_conversation  # noqa: F401
from tests.contract.test_runs import (  # noqa: F401
    test_cancel_in_progress_run,
    test_many_runs_each_one_message,
    test_one_active_run_per_thread,
    test_run_lifecycle_and_steps,
)
from tests.contract.test_streaming import test_create_and_run_stream, test_tool_calls_and_submit_stream  # noqa: F401
from tests.contract.test_tools import test_one_call, test_requires_action_expires  # noqa: F401
from tests.contract.test_vector_stores import (  # noqa: F401
    test_ingest_and_search,
    test_run_with_file_search_cites_the_file,
    test_same_bytes_embedded_once,
)


@pytest.fixture(scope="module")
def server(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_distributed(model_server, tmp_path_factory.mktemp("pgbouncer"), pgbouncer=True)
    yield server
    stop(server.procs)
