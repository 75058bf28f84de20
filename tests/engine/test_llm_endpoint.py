"""The endpoint backend against a real OpenAI-compatible server on loopback (llama-cpp-python's
own server on the embedded model), and against one that goes silent mid-reply."""
from __future__ import annotations

import json
import threading
import time

import pytest

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.errors import EndpointError, EndpointUnavailableError, InvalidInputError
from memdesk.engine.llm.base import ChatModel, ChatTurn, GenerationConfig, StatefulModel
from memdesk.engine.llm.endpoint import (
    ENVELOPE_KEY,
    EndpointConfig,
    EndpointModel,
    Timeouts,
    _Client,
    estimate_tokens,
    list_models,
    normalise_url,
)
from memdesk.engine.llm.registry import load_model
from memdesk.engine.vault.sessions import Sessions
from tests.llm_server import StallingServer, free_port

pytestmark = pytest.mark.slow
EMBEDDED = "SmolLM2-135M-Instruct.Q4_1"


def wait_for(condition, timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        event.wait(0.05)  # a polling interval, not a wait for something to be ready


@pytest.fixture(scope="module")
def served(llama_server) -> EndpointModel:
    model = load_model(endpoint=EndpointConfig(llama_server.url), n_ctx=2048)
    yield model
    model.close()


# ------------------------------------------------------------------ addresses
def test_addresses_are_normalised_and_only_this_computer_is_allowed():
    assert normalise_url("localhost:11434") == "http://localhost:11434"
    assert normalise_url(" http://127.0.0.1:1234/v1/ ") == "http://127.0.0.1:1234"
    assert normalise_url("http://[::1]:8080") == "http://[::1]:8080"
    with pytest.raises(InvalidInputError, match="192.168.1.20 is not this computer"):
        normalise_url("http://192.168.1.20:11434")
    with pytest.raises(InvalidInputError, match="not this computer"):
        normalise_url("http://models.example.com/v1")  # a name could resolve anywhere
    with pytest.raises(InvalidInputError, match="not an http address"):
        normalise_url("ftp://127.0.0.1:21")
    with pytest.raises(InvalidInputError, match="No server address"):
        normalise_url("  ")


def test_the_token_estimate_covers_the_real_prompt(llama_model, served):
    """What the budget needs: an envelope estimated within it fits when the server renders and
    tokenizes the same turns (here SmolLM2's template and tokenizer, as llama.cpp runs it)."""
    conversations = [
        [ChatTurn("system", "You are MemDesk, a helpful personal assistant. Today is Monday 03 March 2025.\n"
                            "What you know about User:\n- User's sister Ana lives in Porto.\n- (05 Nov 2024) "
                            "Order #48213 shipped; call +351 912 345 678."),
         ChatTurn("user", "Bye! It's Shia Labeouf!"), ChatTurn("assistant", "Ah ha ha, yeah, JUST DOING IT!"),
         ChatTurn("user", "Where does my sister live?")],
        [ChatTurn("user", "私の妹はリスボンに住んでいます。 Привет! مرحبا 😀🎉🚀 Ünïcödé façade naïve café")],
        [ChatTurn("user", "def f(x):\n    return {k: v for k, v in x.items() if v is not None}\n\n")],
    ]
    for turns in conversations:
        real = len(llama_model.tokenize(llama_model.render_chat(turns)))
        estimated = len(served.tokenize(served.render_chat(turns)))
        assert estimated >= real, turns[-1].content
    prose = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch."
    assert estimate_tokens(prose) <= 2 * len(llama_model.tokenize(prose)), "the estimate wastes most of the budget"


# ------------------------------------------------------------------ a real server
def test_models_are_listed_and_the_model_describes_itself(llama_server, served):
    listed = list_models(llama_server.url + "/v1/")
    assert [m.id.rsplit("/", 1)[-1] for m in listed] == [EMBEDDED + ".gguf"]
    info = served.info
    assert (info.name, info.backend, info.path, info.n_ctx, info.n_params) == (
        EMBEDDED, "endpoint", llama_server.url, 2048, 0)
    assert isinstance(served, ChatModel)
    # No KV state to save or restore: activation memory leaves it alone.
    assert not isinstance(served, StatefulModel)
    with pytest.raises(EndpointError, match="has no model 'qwen2.5:7b'; it offers .*SmolLM2"):
        EndpointModel(EndpointConfig(llama_server.url, "qwen2.5:7b"))


def test_a_turn_through_chat_streams_and_stores_both_messages(mem, served):
    ana = mem.add("The user's sister Ana lives in Porto.").id
    mem.wait_indexed()
    chat = Chat(mem, served, ChatConfig(max_reply_tokens=48, extract=False), activation=ActivationCache(mem.db))
    response = chat.send("Where does my sister live?")
    pieces = list(response)
    result = response.result
    assert len(pieces) > 1, "the reply arrived in one piece, not streamed"
    assert "".join(pieces).strip()
    # The server applies its own template: the turns went as messages, the memory in the system turn.
    messages = json.loads(result.prompt)[ENVELOPE_KEY]
    assert [m["role"] for m in messages][-1] == "user" and messages[-1]["content"] == "Where does my sister live?"
    assert any("Ana lives in Porto" in m["content"] for m in messages if m["role"] == "system")
    assert ana in result.memory_ids
    assert result.profile == "full" and result.activation == "off"
    assert result.stats.completion_tokens >= len(pieces) and result.stats.prefill_ms > 0
    stored = Sessions(mem.db).messages(result.session_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == "".join(pieces).strip() and stored[1].model == served.info.fingerprint


def test_stop_mid_stream_keeps_what_was_written_and_the_server_stops(mem, served, llama_server):
    chat = Chat(mem, served, ChatConfig(max_reply_tokens=1200, extract=False, repeat_penalty=1.0))
    response = chat.send("Tell me a very long story about a dragon who learns to bake bread.")
    pieces = []
    for piece in response:
        pieces.append(piece)
        if len(pieces) == 3:
            break
    response.stop()
    stored = Sessions(mem.db).messages(response.result.session_id)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].content == "".join(pieces).strip()
    # The server saw the client hang up and stopped generating (it logs that), long before 1200 tokens.
    wait_for(lambda: "Disconnected from client" in llama_server.log_text(), what="the server noticing the stop")
    # And it is free for the next request at once.
    again = "".join(served.stream(served.render_chat([ChatTurn("user", "Say hi.")]), GenerationConfig(max_tokens=8)))
    assert again.strip()


def test_a_reply_the_server_breaks_off_says_so_and_the_server_goes_on(llama_server, served):
    # Told a larger context than the server has, MemDesk sends a prompt the server refuses mid-stream.
    oversold = EndpointModel(EndpointConfig(llama_server.url), n_ctx=8192)
    with pytest.raises(EndpointError, match="broke off the reply.*longer than the context") as caught:
        list(oversold.stream(oversold.render_chat([ChatTurn("user", "word " * 3000)]), GenerationConfig(max_tokens=8)))
    assert not isinstance(caught.value, EndpointUnavailableError)  # it is running: exit code 7, not 14
    assert "".join(served.stream(served.render_chat([ChatTurn("user", "Say hi.")]), GenerationConfig(max_tokens=8)))


def test_a_server_that_is_not_running_is_named_with_what_to_do():
    port = free_port()
    with pytest.raises(EndpointUnavailableError) as caught:
        load_model(endpoint=EndpointConfig(f"http://127.0.0.1:{port}"))
    assert str(caught.value) == (f"Nothing answers at http://127.0.0.1:{port} — is the model server running? "
                                 "Start it, or choose another model in Settings.")
    assert caught.value.exit_code == 14
    # On the usual ports the message names the server people run there.
    ollama = _Client(normalise_url("http://localhost:11434"), Timeouts()).not_answering()
    assert "is Ollama running?" in str(ollama)


def test_a_server_that_stops_mid_reply_is_reported_or_interrupted_promptly():
    with StallingServer() as server:
        model = EndpointModel(EndpointConfig(server.url), timeouts=Timeouts(between_pieces_s=0.5))
        prompt = model.render_chat([ChatTurn("user", "hi")])
        stream = model.stream(prompt, GenerationConfig())
        assert next(stream) == "Hello" and next(stream) == " there"
        with pytest.raises(EndpointUnavailableError, match="stopped answering in the middle of the reply"):
            next(stream)

    with StallingServer() as server:
        # A Stop while the server is silent: interrupt() from another thread ends the read now,
        # not when the (here two-minute) stall timeout would.
        model = EndpointModel(EndpointConfig(server.url), timeouts=Timeouts(between_pieces_s=120))
        pieces: list[str] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                pieces.extend(model.stream(model.render_chat([ChatTurn("user", "hi")]), GenerationConfig()))
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread to fail there
                errors.append(exc)

        reader = threading.Thread(target=read)
        started = time.monotonic()
        reader.start()
        assert server.silent.wait(timeout=30)
        model.interrupt()
        reader.join(timeout=10)
        assert not reader.is_alive(), "interrupt() did not end the silent stream"
        assert time.monotonic() - started < 10 and not errors
        assert pieces == ["Hello", " there"]
        server.release.set()
        assert server.closed_by_client.wait(timeout=10), "the connection was not closed"
