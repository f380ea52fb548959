"""OpenAI's Assistants quickstart, unchanged but for base_url, in both modes."""

from openai import OpenAI

from tests.conftest import KEY_A, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


def test_quickstart(server: Server) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A) as client:
        quickstart(client)


def quickstart(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        model="echo",
    )
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="I need to solve the equation `3x + 11 = 14`. Can you help me?",
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, instructions="Please address the user as Jane Doe."
    )
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert [m.role for m in messages.data] == ["assistant", "user"]
    reply = messages.data[0]
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == f"You said: {message.content[0].text.value}"
    assert reply.run_id == run.id and reply.assistant_id == assistant.id and reply.status == "completed"
    assert (
        run.usage is not None
        and run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    )
    assert run.instructions == "Please address the user as Jane Doe."
    assert isinstance(run.created_at, int) and run.started_at and run.completed_at
    assert run.expires_at is None
