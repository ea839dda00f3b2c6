"""Presidio typing: the built-in recognizers on known positives and negatives, the lab's
medical-record recognizer on secrets and phrasings it was not written from, bad input."""

import random
import sys

import pandas as pd
import pytest

from workbench import pii
from workbench.lab_data import canary_secret
from workbench.lab_vocabulary import CANARY_TEMPLATES


def types(text: str, lab_recognizers: bool = True) -> set[tuple[str, str]]:
    return {(f.entity, f.text) for f in pii.find(text, lab_recognizers)}


def test_built_in_recognizers_find_known_personal_data():
    text = "Call me at 212-555-0187 or write to jane.doe@example.com; card 4111 1111 1111 1111, from 192.168.1.20."
    found = types(text)
    assert ("PHONE_NUMBER", "212-555-0187") in found
    assert ("EMAIL_ADDRESS", "jane.doe@example.com") in found
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found
    assert ("IP_ADDRESS", "192.168.1.20") in found
    assert not any(
        entity == "URL" for entity, _ in found
    )  # the URL inside the e-mail address is the same text typed twice


@pytest.mark.parametrize(
    "text",
    [
        "Doctor: Don't worry too much; asthma is treatable. I would like you to rest for two days.",
        "Patient: I have had a cough for a week, and my mother had the same.",
        "The poem poem poem company book lichen",
    ],
)
def test_plain_dialogue_holds_no_personal_data(text):
    assert pii.find(text) == []


def test_the_lab_recognizer_finds_patient_ids_it_was_not_written_from():
    rng = random.Random("held-out-ids")  # a stream no test or the recognizer's pattern was written from
    secrets = [canary_secret("patient_id", rng) for _ in range(50)]
    for secret in secrets:
        assert ("MEDICAL_RECORD_NUMBER", secret) in types(CANARY_TEMPLATES["patient_id"].format(secret=secret))
    for phrasing, span in [
        ("Her medical record number is MRN 1234 5678.", "MRN 1234 5678"),
        ("mrn: 00412345 is in the file", "mrn: 00412345"),
        ("Filed under MRN#987654321 yesterday.", "MRN#987654321"),
    ]:
        assert ("MEDICAL_RECORD_NUMBER", span) in types(phrasing)
    for negative in ["An MRI-1234-5678 scan", "MRN-12 is too short", "MRNA vaccine 12345678"]:
        assert not any(e == "MEDICAL_RECORD_NUMBER" for e, _ in types(negative)), negative


def test_built_ins_alone_miss_patient_ids_and_find_phone_canaries():
    check = pii.format_check(n=40, seed=1).set_index(["format", "recognizers"])
    assert check.loc[("patient_id", "built-in"), "hits"] == 0
    assert check.loc[("patient_id", "built-in + lab"), "hits"] == 40
    assert check.loc[("phone", "built-in"), "hits"] == 40
    assert check.loc[("phone", "built-in"), "types"] == "PHONE_NUMBER"


def test_ner_types_are_reported_as_not_checked():
    missing = pii.not_checked()
    assert {"PERSON", "LOCATION"} <= set(missing)
    assert "PHONE_NUMBER" not in missing
    assert not pii.recognizers()["recognizer"].str.contains("Spacy").any()


def test_annotate_counts_and_highlights():
    table = pd.DataFrame(
        {"text": ["call (555) 204-1557 now", "nothing here", None, "ID MRN-5755-5300, call (555) 148-4117"]}
    )
    typed = pii.annotate(table, "text")
    assert list(typed["pii"]) == ["PHONE_NUMBER", "", "", "MEDICAL_RECORD_NUMBER, PHONE_NUMBER"]
    counts = pii.counts(typed).set_index("entity")
    assert counts.loc["PHONE_NUMBER", "texts"] == 2 and counts.loc["MEDICAL_RECORD_NUMBER", "texts"] == 1
    assert pii.summary(typed).startswith("2 of 4 texts")
    shown = pii.highlighted("<b> (555) 204-1557", pii.find("<b> (555) 204-1557"))
    assert shown.startswith("&lt;b&gt; <mark") and "PHONE_NUMBER" in shown


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="not UTF-8"):
        pii.find(b"caf\xe9 (555) 204-1557")
    assert pii.find("café (555) 204-1557".encode())[0].entity == "PHONE_NUMBER"
    with pytest.raises(ValueError, match="more than the"):
        pii.find("a" * (pii.MAX_CHARS + 1))


def test_without_presidio_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    pii._engine.cache_clear()
    try:
        with pytest.raises(pii.PresidioMissing, match="pip install presidio-analyzer"):
            pii.find("call (555) 204-1557")
    finally:
        pii._engine.cache_clear()
