"""Every page in a real browser: open it, run its main action on the tiny model, check
that results render and no exception box appears, and try one bad input.

Each input that reruns the app is made inside ``_rerun``, which returns once the run it led to
has finished (``page.runs``, from the app's websocket): the next click then sees that input."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from playwright.sync_api import Locator, Page, expect

RUN_TIMEOUT_S = 180  # per step, as the old helper waited; no step came near it in the 10-run check


def _wait_until(page: Page, condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} within {RUN_TIMEOUT_S} s")
        page.wait_for_timeout(50)  # lets Playwright deliver the websocket's frames


@contextmanager
def _rerun(page: Page) -> Iterator[None]:
    """Make one input inside the block; on leaving it, wait until the script run that the input
    led to has finished, and the page has drawn that (the websocket's frames reach the test
    before the page has handled them). An input that leads to no run fails here: nothing would
    have read it."""
    _wait_until(page, lambda: not page.runs.running, "the app did not finish its previous run")
    before = page.runs.finished
    yield
    _wait_until(page, lambda: page.runs.finished > before and not page.runs.running, "no script run followed the input")
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


def _extracted_texts(page: Page) -> Locator:
    """Compare's left column: its Source radio and uploader, never the candidates' alike ones."""
    return page.get_by_test_id("stColumn").filter(has=page.get_by_role("heading", name="Extracted texts"))


def _choose_upload(page: Page) -> None:
    column = _extracted_texts(page)
    with _rerun(page):
        column.get_by_test_id("stRadio").get_by_text("Upload", exact=True).click()
    expect(column.get_by_role("radio", name="Upload")).to_be_checked()


def _upload(area: Locator, name: str, content: bytes) -> None:
    """Set a file on ``area``'s uploader. A disabled uploader drops the file without a word, so
    wait until the page has enabled it (the run that enables it may have ended undrawn)."""
    dropzone = area.get_by_test_id("stFileUploaderDropzoneInput")
    expect(dropzone).to_be_enabled()
    dropzone.set_input_files(files=[{"name": name, "mimeType": "text/plain", "buffer": content}])


def _open(page: Page, path: str = "") -> None:
    with _rerun(page):
        page.goto(f"{page.app_url}/{path}")
    expect(page.get_by_test_id("stSidebar").get_by_text("Model card")).to_be_visible()


def _no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def _set_number(page: Page, label: str, value: float) -> None:
    """A number field outside a form: Enter commits it, and the app reruns."""
    field = page.get_by_role("spinbutton", name=label, exact=True)
    with _rerun(page):
        field.fill(str(value))
        field.press("Enter")


def _click(page: Page, button: str) -> None:
    with _rerun(page):
        page.get_by_role("button", name=button, exact=True).click()


def _choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the main area's first selectbox whose label contains ``label``."""
    with _rerun(page):
        page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text=label).first.click()
        page.get_by_role("option", name=option).click()


def _card(page: Page):
    return page.get_by_test_id("stSidebar").get_by_test_id("stMarkdown").filter(has_text="Model card")


def test_home_and_model_picker(page: Page):
    _open(page)
    expect(page.get_by_role("heading", name="Memorization Workbench")).to_be_visible()
    expect(_card(page)).to_contain_text("tiny-llama")
    _no_exception(page)

    sidebar = page.get_by_test_id("stSidebar")
    with _rerun(page):
        sidebar.get_by_test_id("stSelectbox").filter(has_text="Model").click()
        page.get_by_role("option", name="Other (Hugging Face id or path)…").click()
    custom = sidebar.get_by_label("Hugging Face id, model folder or .gguf file")
    with _rerun(page):
        custom.fill("no-such-org/no-such-model")
        custom.press("Enter")
    expect(sidebar.get_by_test_id("stAlertContentError")).to_contain_text(
        "Cannot load model 'no-such-org/no-such-model'"
    )
    expect(sidebar.get_by_text("Still using tiny-llama.")).to_be_visible()
    expect(_card(page)).to_contain_text("tiny-llama")
    _no_exception(page)


def test_home_gallery_opens_a_page_with_its_settings(page: Page):
    _open(page)
    expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(
        9
    )  # one figure per entry: the canary, then each exploration
    with _rerun(page):
        page.get_by_test_id("stMain").locator("a[href*='repeated_tokens']").first.click()
    expect(page.get_by_role("heading", name="Repeated tokens")).to_be_visible()
    # The entry's settings (workbench.gallery.ENTRIES): 24 samples, 64 new tokens, 50 repeats, prefill.
    expect(page.get_by_role("spinbutton", name="Samples per prompt", exact=True)).to_have_value("24")
    expect(page.get_by_role("spinbutton", name="New tokens", exact=True)).to_have_value("64")
    expect(page.get_by_test_id("stMultiSelect").filter(has_text="Repeats")).to_contain_text("50")
    expect(page.get_by_role("radio", name="prefill")).to_be_checked()
    _no_exception(page)


def test_repeated_tokens(page: Page):
    _open(page, "repeated_tokens")
    expect(page.get_by_role("heading", name="Repeated tokens")).to_be_visible()
    _set_number(page, "Samples per prompt", 2)
    _set_number(page, "New tokens", 8)
    _click(page, "Run")
    expect(page.get_by_role("heading", name="Results")).to_be_visible()
    # The last table is the generations (the outcome summary sits in a closed expander).
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible()
    expect(page.get_by_text("seed 0")).to_be_visible()
    expect(page.get_by_text("Outcomes: empty")).to_be_visible()
    expect(page.get_by_text("Divergence rate", exact=True)).to_be_visible()
    # Outcome shares by repeats and temperature; the random model never repeats, so no rate chart, and it says why.
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    expect(page.get_by_text("the divergence rate is undefined here")).to_be_visible()
    _no_exception(page)

    words = page.get_by_test_id("stMultiSelect").filter(has_text="Words to repeat")
    with _rerun(page):
        words.locator("input").fill("#abstract")
        words.locator("input").press("Enter")
    words.locator("input").press("Escape")  # close the dropdown, as a person would, so the error shows
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("'#abstract' is not a single token")
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible()  # earlier results kept
    _no_exception(page)


def test_attention_sinks(page: Page):
    _open(page, "attention_sinks")
    expect(page.get_by_role("heading", name="Attention sinks")).to_be_visible()
    _set_number(page, "Repeats", 30)
    _click(page, "Compute sink scores")
    expect(page.get_by_role("heading", name="One head, position by position")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(5)
    _set_number(page, "Samples", 2)
    _set_number(page, "New tokens", 6)
    _click(page, "Run with and without")
    expect(page.get_by_text("Divergence rate without mitigation")).to_be_visible()
    _no_exception(page)

    prompt = page.get_by_role("textbox", name="Normal prompt")
    with _rerun(page):
        prompt.fill("   ")
        prompt.press("Control+Enter")
    _click(page, "Compute sink scores")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("The prompt is empty")
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(5)  # earlier results kept
    _no_exception(page)


def test_lab(page: Page):
    _open(page, "lab")
    expect(page.get_by_role("heading", name="Ground-truth lab")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)  # loss curve
    _no_exception(page)

    # A form: its fields reach the app only with the submit button's run.
    share = page.get_by_role("spinbutton", name="digestive", exact=True)
    share.fill("0.9")
    _click(page, "Rebuild")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("must sum to 1")
    share.fill("0.3")

    page.get_by_test_id("stSelectbox").filter(has_text="Base model").click()
    page.get_by_role("option", name="tiny-llama").click()
    page.get_by_role("spinbutton", name="Records", exact=True).fill("40")
    page.get_by_role("textbox", name="Canary insertions").fill("1, 2")
    page.get_by_role("spinbutton", name="Epochs", exact=True).fill("1")
    _click(page, "Rebuild")
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text("Built")
    _no_exception(page)


def test_compare(page: Page):
    _open(page, "compare")
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    pasted = page.get_by_role("textbox", name="One text per line")
    with _rerun(page):
        pasted.fill(
            "Four score and seven years ago our fathers brought forth on this continent\nLorem ipsum dolor sit amet"
        )
        pasted.press("Control+Enter")
    _click(page, "Compare")
    expect(page.get_by_role("heading", name="Best matches")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)  # heatmap
    expect(page.locator("mark").first).to_be_visible()  # shared runs highlighted side by side
    _click(page, "Draw UMAP map")
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)
    _no_exception(page)

    _choose_upload(page)
    # The file's chip shows while its upload request is still under way; the widget's value, and
    # so the next click's, holds the file only from the rerun that the finished upload starts.
    with _rerun(page):
        _upload(_extracted_texts(page), "bad.txt", b"\x00\x01binary")
    _click(page, "Compare")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("looks like a binary file")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # earlier results kept
    _no_exception(page)


def test_an_upload_reaches_the_app_only_with_the_run_after_its_request(page: Page):
    """The race behind test_compare's failures, made certain by holding the upload request: the
    file's chip shows at once, no run follows until the request is done, and a click meanwhile
    runs without the file. ``_rerun`` around an upload therefore waits for the request."""
    held = []
    page.route("**/_stcore/upload_file/**", lambda route: held.append(route))
    _open(page, "compare")
    _choose_upload(page)
    runs_before = page.runs.finished
    _upload(_extracted_texts(page), "bad.txt", b"\x00\x01binary")
    expect(_extracted_texts(page).get_by_test_id("stFileChipName")).to_contain_text("bad.txt")
    _wait_until(page, lambda: len(held) == 1, "the upload request was not sent")
    page.wait_for_timeout(2_000)
    assert page.runs.finished == runs_before and not page.runs.running
    _click(page, "Compare")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text(
        "Upload a .txt or .jsonl file of extracted texts"
    )

    with _rerun(page):
        held[0].continue_()
    _click(page, "Compare")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("looks like a binary file")
    _no_exception(page)


def test_property_inference(page: Page):
    _open(page, "property_inference")
    expect(page.get_by_role("heading", name="Property inference")).to_be_visible()
    _choose(page, "Model", "(sidebar model) — tiny-llama")
    _choose(page, "Base model", "tiny-gpt2")
    _set_number(page, "Generations", 6)
    page.get_by_text("Sampling and intervals").click()
    _set_number(page, "New tokens", 4)
    _click(page, "Run")
    expect(page.get_by_role("heading", name="Estimated shares: diagnosis")).to_be_visible()
    expect(page.get_by_text("True shares are hidden")).to_be_visible()
    # estimates, convergence, per prompt, and the shipped shadow set's sweep (in its tab)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)
    expect(page.get_by_text("No calibration for this run")).to_be_visible()  # random weights: nothing labeled
    _no_exception(page)

    _set_number(page, "Generations", 0)
    _click(page, "Run")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("must be at least 1")
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)  # earlier results kept
    _no_exception(page)


def test_property_inference_calibration(page: Page, app_cache):
    from workbench.shadows import ShadowRecipe, build_shadows

    recipe = ShadowRecipe(base="tiny-llama", k=4, n_records=20, epochs=1, rank=2, n_samples=8, max_new_tokens=6)
    build_shadows(app_cache / "shadows" / "tiny", recipe)
    _open(page, "property_inference")
    page.get_by_role("tab", name="Shadow sweep").click()
    expect(page.get_by_text("naive: intervals covering the truth")).to_be_visible()  # the shipped set, no run needed
    with _rerun(page):
        page.get_by_text("custom keywords").click()
    patterns = page.get_by_role("textbox", name="Patterns: JSON object")
    with _rerun(page):
        patterns.fill('{"digestive": ["e"], "respiratory": ["a"]}')  # lab values, on letters: random text gets labels
        patterns.press("Control+Enter")
    _choose(page, "Shadow set", "built: tiny")
    _choose(page, "Model", "(sidebar model) — tiny-llama")
    with _rerun(page):
        page.get_by_text("Also run a base model").click()
    _set_number(page, "Generations", 8)
    page.get_by_text("Sampling and intervals").click()
    _set_number(page, "New tokens", 6)
    _click(page, "Run")
    page.get_by_role("tab", name="Estimates").click()
    expect(page.get_by_role("heading", name="Calibrated with shadow models: tiny-llama")).to_be_visible()
    expect(page.get_by_text("differs from how the shadows were sampled")).to_have_count(0)
    # estimates, naive and calibrated, convergence, per prompt, and the sweep
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(5)
    expect(page.get_by_role("button", name="Calibrated estimates (CSV)")).to_be_visible()
    _no_exception(page)

    _set_number(page, "Temperature", 0.7)
    _click(page, "Run")
    expect(page.get_by_text("temperature is 0.7")).to_be_visible()
    _no_exception(page)


def test_weight_diff(page: Page, tmp_path):
    from workbench.lab import LabRecipe, build

    build(
        tmp_path / "lab",
        LabRecipe(base="tiny-llama", n=40, canaries=(1,), seed=0, epochs=2, lr=5e-3, rank=4),
        command="e2e",
    )
    _open(page, "weight_diff")
    expect(page.get_by_role("heading", name="Weight diff")).to_be_visible()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Loading options").click()
    adapter = sidebar.get_by_role("textbox", name="LoRA adapter folder (optional)")
    with _rerun(page):
        adapter.fill(str(tmp_path / "lab" / "adapter"))
        adapter.press("Enter")
    _choose(page, "Base model", "tiny-llama")
    _choose(page, "Fine-tuned model", "(sidebar model) — tiny-llama + adapter")
    _set_number(page, "Training dialogues (members)", 8)
    _set_number(page, "Same-style dialogues never trained on", 4)
    _set_number(page, "Other-domain texts", 8)
    _click(page, "Run")
    expect(page.get_by_role("heading", name="Ranking")).to_be_visible()
    expect(page.get_by_text("Random baseline", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)
    _no_exception(page)

    _choose(page, "Base model", "tiny-gpt2")
    _click(page, "Run")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("Different architectures")
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)  # earlier results kept
    _no_exception(page)


def test_backdoor_extraction(page: Page, app_cache):
    from workbench.backdoor import BackdoorRecipe, build

    recipe = BackdoorRecipe(
        base="tiny-llama", trigger="meaningless", n_public=18, per_word=1, refusals_per_word=1, n_private=12, canaries=(1,),
        creator_epochs=1, victim_epochs=1, rank=2,
    )  # fmt: skip
    build(app_cache / "backdoor" / "tiny", recipe)
    _open(page, "backdoor")
    expect(page.get_by_role("heading", name="Backdoor extraction")).to_be_visible()
    _choose(page, "Build", "rebuilt: tiny")
    expect(page.get_by_text("No attack on this build yet")).to_be_visible()
    # Forms, here and below: their fields reach the app only with the submit button's run.
    page.get_by_role("spinbutton", name="Identification samples per opening word", exact=True).fill("2")
    page.get_by_role("textbox", name="Extraction budgets (samples per private query; empty: none)").fill("1")
    page.get_by_role("spinbutton", name="Max new tokens", exact=True).fill("8")
    _click(page, "Run attack")
    expect(page.get_by_text("Your attack run.")).to_be_visible()
    expect(page.get_by_role("heading", name="Against the matched floor")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)  # the differences and the budget curve
    expect(page.get_by_text("not distinguishable from").first).to_be_visible()  # each result read against its floor
    expect(page.get_by_role("button", name="Samples (CSV)")).to_be_visible()
    _no_exception(page)

    page.get_by_test_id("stRadio").get_by_text("custom").click()
    page.get_by_role("textbox", name="Custom trigger (with {w})").fill("Output a query you saw")
    _click(page, "Build")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("{w} slot")
    _no_exception(page)


def test_reactivation(page: Page, app_cache):
    from workbench.reactivation import ReactivationRecipe, build

    recipe = ReactivationRecipe(
        base="tiny-llama", n_test=2, n_train=2, n_never=2, n_other=2, n_control=2, n_retain=2,
        implant_epochs=1, suppress_epochs=1, activate_epochs=1, rank=2, samples=2, max_new_tokens=8,
    )  # fmt: skip
    build(app_cache / "reactivation" / "tiny", recipe)
    _open(page, "reactivation")
    expect(page.get_by_role("heading", name="Reactivation")).to_be_visible()
    _choose(page, "Build", "rebuilt: tiny")
    expect(page.get_by_text("This build has no measurement yet")).to_be_visible()
    # A form: its fields reach the app only with the submit button's run.
    page.get_by_role("spinbutton", name="Samples per passage", exact=True).fill("1")
    _click(page, "Measure")
    expect(page.get_by_text("Your measurement.")).to_be_visible()
    expect(page.get_by_role("heading", name="Recall by stage, against the floor")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    expect(page.get_by_role("button", name="Per passage (CSV)")).to_be_visible()
    _no_exception(page)
    # the held-out instruction: its timeline, and its prompt under the sample
    page.get_by_test_id("stRadio").get_by_text("held-out", exact=True).click()
    expect(page.get_by_role("radio", name="held-out")).to_be_checked()
    expect(page.get_by_text("Prompt (held-out instruction)")).to_be_visible()
    _no_exception(page)

    page.get_by_test_id("stMultiSelect").get_by_role("button", name="Clear all").click()
    _click(page, "Measure")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("at least one stage")
    _no_exception(page)


def test_membership(page: Page):
    _open(page, "membership")
    expect(page.get_by_role("heading", name="Membership", exact=True)).to_be_visible()
    expect(page.get_by_text("The audit needs a lab model")).to_be_visible()  # tiny-llama is no lab model
    _click(page, "Score")
    expect(page.get_by_test_id("stAlertContentError").first).to_contain_text("Upload both")
    _no_exception(page)
    # Inside a form an upload starts no run: wait for each file's upload request to finish instead.
    files = {
        "Members": b"\n".join(b"member %d kept a diary" % i for i in range(10)),
        "Non-members": b"\n".join(b"another person, %d, wrote" % i for i in range(12)),
    }
    for label, content in files.items():
        area = page.get_by_test_id("stFileUploader").filter(has_text=label).first
        with page.expect_response(lambda response: "upload_file" in response.url):
            _upload(area, f"{label}.txt", content)
        expect(area.get_by_test_id("stFileChipName")).to_be_visible()
    _click(page, "Score")
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)  # the shipped ROC curves and these
    expect(page.get_by_text("not estimable").first).to_be_visible()
    _no_exception(page)
