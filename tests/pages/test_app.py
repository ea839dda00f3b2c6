"""The app shell, driven by Streamlit's AppTest on the tiny model."""

import pytest

OTHER = "Other (Hugging Face id or path)…"


@pytest.fixture
def app(open_app):
    return open_app()


def _card(at) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def test_home_page_and_model_card(app):
    assert app.title[0].value == "Memorization Workbench"
    card = _card(app)
    assert "tiny-llama" in card and "| layers | 2 |" in card and "| heads (kv heads) | 4 (2) |" in card
    assert any("loads the model after this page" in i.value for i in app.info)  # Home is drawn first
    assert not app.error
    app.run()
    assert any("tiny-llama" in s.value for s in app.success)


def test_switching_models(app):
    app.sidebar.selectbox(key="model_choice").select("tiny-gpt2").run()
    assert not app.exception and not app.error
    assert "`tiny-gpt2`" in _card(app)


def test_unknown_model_shows_error_and_keeps_previous(app):
    app.sidebar.selectbox(key="model_choice").select(OTHER).run()
    app.sidebar.text_input(key="model_custom").input("no-such-org/no-such-model").run()
    assert not app.exception
    errors = [e.value for e in app.sidebar.error]
    assert errors and "Cannot load model 'no-such-org/no-such-model'" in errors[0]
    assert "tiny-llama" in errors[0]  # lists the registry
    assert "`tiny-llama`" in _card(app)
    assert any("Still using tiny-llama" in i.value for i in app.sidebar.info)
    # Rerunning does not lose the previous model either.
    app.run()
    assert "`tiny-llama`" in _card(app) and app.sidebar.error


def test_empty_custom_name_is_an_error_not_a_crash(app):
    app.sidebar.selectbox(key="model_choice").select(OTHER).run()
    assert not app.exception
    assert any("empty" in e.value for e in app.sidebar.error)
    assert "`tiny-llama`" in _card(app)


def test_bad_startup_model_shows_error_and_home_still_renders(open_app, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODEL", "./no-such-model.gguf")
    at = open_app()
    assert any("Cannot load model './no-such-model.gguf'" in e.value for e in at.sidebar.error)
    assert at.title[0].value == "Memorization Workbench"
    at.sidebar.selectbox(key="model_choice").select("tiny-llama").run()
    assert "`tiny-llama`" in _card(at) and not at.sidebar.error
