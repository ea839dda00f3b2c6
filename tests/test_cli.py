import json

from workbench.cli import main


def test_info_json(capsys):
    assert main(["info", "--model", "tiny-gpt2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "tiny-gpt2"
    assert (info["n_layers"], info["n_heads"], info["context_length"]) == (2, 4, 512)


def test_info_table(capsys):
    assert main(["info", "--model", "tiny-llama", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "n_kv_heads" in out and "bfloat16" in out


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["info", "--model", "./nope.gguf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("[") and "workbench: error: Cannot load model './nope.gguf'" in err
    assert "Traceback" not in err


def test_model_defaults_to_environment(monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-gpt2")
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny-gpt2"
