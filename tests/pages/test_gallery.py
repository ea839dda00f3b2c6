"""The shipped gallery is what the code builds today, and Home shows it without a model."""

import pandas as pd
import pytest

from workbench import gallery, plots

STALE = "The shipped gallery is stale: run `workbench gallery build` and commit data/gallery."


@pytest.mark.default_model
@pytest.mark.slow
def test_the_shipped_gallery_matches_the_code_that_builds_it():
    shipped = gallery.load()
    assert [e["name"] for e in shipped] == [e.name for e in gallery.ENTRIES], STALE
    for entry, stored in zip(gallery.ENTRIES, shipped):
        assert stored["settings"] == entry.settings, STALE
        table, sentence = entry.build(entry.settings, None)
        assert sentence == stored["sentence"], f"{entry.title}: {STALE}"
        pd.testing.assert_frame_equal(
            table.reset_index(drop=True), stored["table"], check_dtype=False, check_exact=False, rtol=1e-4, atol=1e-6,
            obj=f"{entry.title} ({STALE})",
        )  # fmt: skip
        assert plots.gallery_figure(entry.name, stored["table"]) is not None


def test_home_shows_the_gallery_even_when_no_model_loads(open_app, monkeypatch):
    import workbench.ui.model

    def no_model(spec):
        raise ValueError("no model in this test")

    monkeypatch.setattr(workbench.ui.model, "load_session", no_model)
    workbench.ui.model.shared_session.clear()  # no model loaded by earlier tests either
    at = open_app()
    assert not at.exception
    titles = [h.value for h in at.subheader]
    assert [e.title for e in gallery.ENTRIES] == [t for t in titles if t in {e.title for e in gallery.ENTRIES}]
    assert len(at.get("vega_lite_chart")) == len(gallery.ENTRIES)
    assert any("no model in this test" in e.value for e in at.sidebar.error)


def test_rebuilding_only_some_entries_keeps_the_others(tmp_path):
    import shutil

    from workbench.builds import code_version

    folder = tmp_path / "gallery"
    shutil.copytree(gallery.GALLERY_DIR, folder)
    before = {e["name"]: e for e in gallery.load(folder)}
    manifest = gallery.build(folder, only=["reactivation"])
    after = {e["name"]: e for e in gallery.load(folder)}
    assert [e["name"] for e in manifest["entries"]] == [e.name for e in gallery.ENTRIES]
    assert after["reactivation"]["code_version"] == code_version()
    for name in set(before) - {"reactivation"}:
        assert (
            after[name]["sentence"] == before[name]["sentence"]
            and after[name]["code_version"] == before[name]["code_version"]
        )
        pd.testing.assert_frame_equal(after[name]["table"], before[name]["table"])
    with pytest.raises(ValueError, match="No gallery entry nope"):
        gallery.build(folder, only=["nope"])
