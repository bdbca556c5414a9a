"""The language-model interface (cloud/lm/load.py, cloud/lm/tune.py): clear errors for a missing
or wrong model and adapter, caught at config time; and, marked slow, the real SmolLM2 GGUF
answering one question through `earshot serve lm=default` (the product path)."""
from __future__ import annotations

import pytest

from cloud.lm.load import (ADAPTER_DIR, ADAPTER_FILES, DEFAULT_LM_FILE, check_adapter, default_lm_path,
                           resolve_lm_path)
from shared.config import ConfigError, UserError


def test_a_missing_default_names_the_set_up_command(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(tmp_path))
    assert default_lm_path() == tmp_path / DEFAULT_LM_FILE
    for lm in (None, "", "default", "smollm2"):
        with pytest.raises(UserError, match=r"model\.lm: .*SmolLM2.* does not exist \(run set-up once: "
                                            r"scripts/test --co -q, or scripts/demo .*never downloads"):
            resolve_lm_path(lm)
    (tmp_path / DEFAULT_LM_FILE).write_bytes(b"GGUF")
    assert resolve_lm_path("default") == tmp_path / DEFAULT_LM_FILE


def test_other_paths_must_be_a_gguf_file_or_a_hugging_face_folder(tmp_path):
    with pytest.raises(UserError, match=r"model\.lm: .*nope\.gguf does not exist; Earshot never downloads"):
        resolve_lm_path(tmp_path / "nope.gguf")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UserError, match=r"is a file but not \.gguf"):
        resolve_lm_path(tmp_path / "weights.bin")
    with pytest.raises(UserError, match=r"has no config\.json \(not a Hugging Face model folder\)"):
        resolve_lm_path(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert resolve_lm_path(str(tmp_path)) == tmp_path


def test_adapters_are_checked_and_the_shipped_one_is_complete(tmp_path):
    assert check_adapter(None, None) is None and check_adapter("none", None) is None
    assert check_adapter("default", tmp_path / "other.gguf") is None  # tuned on SmolLM2 only
    assert check_adapter("default", None) == ADAPTER_DIR
    assert all((ADAPTER_DIR / name).is_file() for name in ADAPTER_FILES)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match=r"lm_adapter: .* has no adapter_model\.safetensors .*cloud\.lm\.tune"):
        check_adapter(tmp_path, None, key="lm_adapter")


def test_serve_and_worker_configs_refuse_a_bad_lm_before_loading_anything(tmp_path):
    from cloud.server.serve_config import ServeConfig, WorkerConfig

    with pytest.raises(ConfigError, match=r"^lm: .*missing\.gguf does not exist"):
        ServeConfig(mode="broker", lm=str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigError, match=r"^lm_adapter: .* has no adapter_config\.json"):
        WorkerConfig(checkpoint=None, lm="default", lm_adapter=str(tmp_path))
    assert ServeConfig(mode="broker").lm is None  # off unless asked for


def test_a_corrupt_gguf_file_is_a_user_error_naming_it(tmp_path):
    from cloud.lm.load import load_lm

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(UserError, match=r"model\.lm: cannot load .*broken\.gguf"):
        load_lm(bad)


@pytest.mark.slow  # loads the real 135M-parameter model (~20-30 s on 2 shared cores)
def test_serve_with_the_real_lm_answers_a_question_in_a_sentence(tmp_path):
    """`earshot serve lm=default`: a query gets the teacher's answer plus a sentence written by
    SmolLM2 (+ the shipped adapter) and the evidence it came from; capabilities announce it."""
    from edge.client import Client
    from shared.protocol import ResultEvidence
    from tests.cloud.test_server_teacher import real_request
    from tests.helpers.server_harness import EARSHOT, Proc, ping_until_ready, wait_for_lines
    from tests.helpers.teacher_world import make_tiny_teacher

    resolve_lm_path("default")  # set-up fetched it (scripts/test runs fetch_lm)
    folder = make_tiny_teacher(tmp_path / "model", ["what was that?"], max_answer_tokens=4, frame_size_px=32)
    ep_file = tmp_path / "ep.txt"
    server = Proc([str(EARSHOT), "serve", f"checkpoint={folder}", "bind=tcp://127.0.0.1:*", "lm=default",
                   f"endpoint_file={ep_file}", "max_batch_size=2"], tmp_path / "serve.log", cwd=tmp_path)
    try:
        (ep,) = wait_for_lines(ep_file, server, timeout=60)
        ping_until_ready(ep, timeout=120, proc=server)
        with Client(ep) as client:
            caps = client.hello()
            (form,) = [a for a in caps.answers if a.kind == "sentence"]
            assert "SmolLM2-135M-Instruct.Q4_1.gguf+answerer_lora" in form.when
            result = client.submit(real_request("x", query="what did you hear?"), deadline_ms=30_000).result()
            plain = client.submit(real_request("y"), deadline_ms=30_000).result()
    finally:
        server.term()
        server.wait(timeout=30)
    assert isinstance(result.evidence, ResultEvidence) and result.timing_ms["lm_ms"] > 0
    words = result.sentence.split()
    assert 2 <= len(words) <= 40 and result.sentence[0].isupper(), result.sentence
    assert result.sentence.count(".") <= 1  # one sentence
    assert plain.sentence is None and isinstance(plain.evidence, ResultEvidence)
    assert "loaded language model SmolLM2" in server.text()
