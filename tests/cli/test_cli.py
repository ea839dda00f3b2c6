import json

from workbench.cli import main
from workbench.corpus import REFERENCE_CORPUS


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


def test_diverge_writes_results(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "r.parquet"
    args = ["diverge", "--model", "tiny-llama", "--word", "poem", "--word", "book", "--repeats", "10"]
    assert main([*args, "--n", "3", "--max-new-tokens", "8", "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 6 and set(table["word"]) == {"poem", "book"}
    assert {"pii", "pii_spans"} <= set(table.columns)
    printed = capsys.readouterr().out
    assert "6 generations" in printed and "escapes: " in printed and "hold personal data" in printed
    jsonl = tmp_path / "r.jsonl"
    assert main([*args, "--n", "3", "--max-new-tokens", "8", "--out", str(jsonl)]) == 0
    assert pd.read_json(jsonl, lines=True)["output"].tolist() == table["output"].tolist()


def test_diverge_sweeps_temperatures_and_writes_the_outcome_summary(tmp_path, capsys):
    import pandas as pd

    args = ["diverge", "--model", "tiny-gpt2", "--word", "poem", "--word", "book", "--repeats", "8", "--n", "2"]
    args += [
        "--temperature",
        "0",
        "--temperature",
        "1",
        "--max-new-tokens",
        "24",
        "--min-repeats",
        "2",
        "--window",
        "8",
    ]
    assert main([*args, "--out", str(tmp_path / "r.csv"), "--summary", str(tmp_path / "s.csv")]) == 0
    table, summary = pd.read_csv(tmp_path / "r.csv"), pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 8 and sorted(set(table["temperature"])) == [0, 1]
    assert len(summary) == 4 and summary["generations"].tolist() == [2, 2, 2, 2]
    greedy_poem = summary[(summary["word"] == "poem") & (summary["temperature"] == 0)].iloc[0]
    assert greedy_poem["escaped"] == 1.0 and greedy_poem["rate"] == 1.0  # the random GPT-2 repeats, then escapes
    out = capsys.readouterr().out
    assert "8 generations; divergence rate" in out and "95% CI" in out


def test_diverge_on_a_lab_build_counts_training_records(tmp_path, capsys):
    from workbench.lab import LabRecipe, build

    build(
        tmp_path / "lab",
        LabRecipe(base="tiny-gpt2", n=30, canaries=(1,), seed=0, epochs=1, lr=1e-3, rank=4),
        command="test",
    )
    args = ["diverge", "--model", "tiny-gpt2", "--adapter", str(tmp_path / "lab" / "adapter"), "--word", "poem"]
    assert (
        main(
            [*args, "--repeats", "8", "--temperature", "0", "--max-new-tokens", "24", "--out", str(tmp_path / "r.csv")]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "lab model: 0 of 1 escaped texts reproduce a training record" in out and "per 100 escapes (floor" in out


def test_diverge_bad_input_is_a_clean_error(tmp_path, capsys):
    bad_corpus = tmp_path / "bad.txt"
    bad_corpus.write_bytes(b"\xff\xfe")
    base = ["diverge", "--model", "tiny-llama", "--repeats", "10"]
    cases = [
        ([*base, "--word", "#abstract", "--out", str(tmp_path / "a.csv")], "not a single token"),
        ([*base, "--word", "poem", "--n", "0", "--out", str(tmp_path / "a.csv")], "at least 1"),
        ([*base, "--word", "poem", "--corpus", str(bad_corpus), "--out", str(tmp_path / "a.csv")], "not UTF-8"),
        ([*base, "--word", "poem", "--out", str(tmp_path / "a.xlsx")], "--out must end in"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("a.*"))


def test_sinks_writes_scores(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "s.parquet"
    assert main(["sinks", "--model", "tiny-gpt2", "--prompt", "Hello there, how are you?", "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["layer", "head", "score"] and len(scores) == 8
    assert "heads" in capsys.readouterr().out
    assert main(["sinks", "--model", "tiny-llama", "--word", "poem", "--repeats", "100", "--out", str(out)]) == 0


def test_sinks_bad_input(tmp_path, capsys):
    out = str(tmp_path / "s.csv")
    for argv, message in [
        (["--prompt", " "], "The prompt is empty"),
        (["--word", "poem", "--repeats", "600"], "use at most 511 repeats"),
        (["--prompt", "hi there", "--sink-index", "5"], "sink_index"),
    ]:
        assert main(["sinks", "--model", "tiny-llama", *argv, "--out", out]) == 2
        assert message in capsys.readouterr().err


def test_unwritable_output_and_bad_device_are_clean_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["sinks", "--model", "tiny-llama", "--prompt", "hi there", "--out", str(blocker / "x.csv")], "--out"),
        (["info", "--model", "tiny-llama", "--device", "cuda:x"], "Invalid device"),
        (["info", "--model", "tiny-llama", "--device", "mps"], "mps"),
        (
            [
                "diverge",
                "--model",
                "tiny-llama",
                "--word",
                "poem",
                "--repeats",
                "5",
                "--min-tokens",
                "0",
                "--out",
                str(tmp_path / "a.csv"),
            ],
            "min-tokens",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_lab_build_refuses_an_existing_folder_and_show_reads_the_shipped_lab(tmp_path, capsys):
    assert main(["lab", "build", "--base", "tiny-llama", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["lab", "show"]) == 0
    out = capsys.readouterr().out
    assert "canary" in out and "training loss" in out
    assert main(["lab", "show", "--dir", str(tmp_path)]) == 2


def test_compare_writes_pairs_and_best_matches(tmp_path, capsys):
    import pandas as pd

    extracted = tmp_path / "run.jsonl"
    extracted.write_text(
        json.dumps({"escaped_text": "Four score and seven years ago our fathers brought forth on this continent"}) + "\n"
        + json.dumps({"escaped_text": ""}) + "\n"
        + json.dumps({"escaped_text": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, call (555) 148-4117"}) + "\n"
    )  # fmt: skip
    out, best = tmp_path / "pairs.parquet", tmp_path / "best.csv"
    argv = [
        "compare",
        "--extracted",
        str(extracted),
        "--extracted-field",
        "escaped_text",
        "--candidates",
        str(REFERENCE_CORPUS),
    ]
    assert (
        main(
            [
                *argv,
                "--top-k",
                "2",
                "--tokenizer",
                "tiny-llama",
                "--min-run",
                "5",
                "--out",
                str(out),
                "--best",
                str(best),
            ]
        )
        == 0
    )
    pairs = pd.read_parquet(out)
    assert {"extracted_id", "candidate_id", "cosine", "levenshtein_ratio", "longest_run", "exact_run"} <= set(
        pairs.columns
    )
    chosen = pd.read_csv(best)
    assert chosen["candidate_id"].tolist() == ["gettysburg-address.txt", "lorem-ipsum.txt"]
    assert chosen["extracted"].all()  # exact runs of >= 5 model tokens
    assert chosen["pii"].fillna("").tolist() == ["", "PHONE_NUMBER"] and chosen["candidate_pii"].isna().all()
    printed = capsys.readouterr().out
    assert "2 extracted x 16 candidates" in printed and "1 of 2 texts hold personal data" in printed
    assert main([*argv, "--passage-words", "20", "--out", str(out)]) == 0
    assert pd.read_parquet(out)["candidate_id"].str.contains("@").all()


def test_compare_bad_input_is_a_clean_error(tmp_path, capsys):
    binary, empty = tmp_path / "b.txt", tmp_path / "e.jsonl"
    binary.write_bytes(b"\x00\x01")
    empty.write_text("")
    good = tmp_path / "g.txt"
    good.write_text("some text\n")
    for argv, message in [
        (["--extracted", str(binary), "--candidates", str(good)], "binary"),
        (["--extracted", str(good), "--candidates", str(empty)], "is empty"),
        (["--extracted", str(tmp_path / "missing.txt"), "--candidates", str(good)], "Cannot read"),
        (["--extracted", str(good), "--candidates", str(good), "--top-k", "0"], "top_k"),
    ]:
        assert main(["compare", *argv, "--out", str(tmp_path / "o.csv")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_propinfer_writes_estimates_and_generations(tmp_path, capsys):
    import pandas as pd

    patterns = tmp_path / "letters.json"
    patterns.write_text(json.dumps({"has e": ["e"], "has a": ["a"]}))
    out, generations = tmp_path / "est.csv", tmp_path / "gen.jsonl"
    argv = ["propinfer", "--model", "tiny-llama", "--property", "diagnosis", "--patterns", str(patterns), "--n", "9"]
    assert (
        main(
            [
                *argv,
                "--max-new-tokens",
                "6",
                "--interval",
                "bootstrap",
                "--out",
                str(out),
                "--generations",
                str(generations),
            ]
        )
        == 0
    )
    estimates = pd.read_csv(out)
    assert estimates["value"].tolist() == ["has e", "has a"] and "true_share" not in estimates
    table = pd.read_json(generations, lines=True)
    assert len(table) == 9 and {"prompt", "text", "label", "seed"} <= set(table.columns)
    assert "9 generations" in capsys.readouterr().out
    assert (
        main(
            [
                "propinfer",
                "--model",
                "tiny-llama",
                "--property",
                "gender",
                "--style",
                "chat",
                "--n",
                "4",
                "--max-new-tokens",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "No generation matched any value" in capsys.readouterr().out  # random weights write no clinic words


def test_propinfer_bad_input_is_a_clean_error(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    numbers = tmp_path / "numbers.json"
    numbers.write_text('{"flu": [1, 2]}')
    base = ["propinfer", "--model", "tiny-llama", "--property", "diagnosis", "--out", str(tmp_path / "e.csv")]
    for argv, message in [
        (["--n", "0"], "at least 1"),
        (["--patterns", str(empty)], "no values"),
        (["--patterns", str(broken)], "not valid JSON"),
        (["--patterns", str(numbers)], "must be a list of strings"),
        (["--prompt", " "], "No prompts"),
    ]:
        assert main([*base, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "e.csv").exists()


def test_selec_ranks_a_lab_pool_and_an_uploaded_one(tmp_path, capsys):
    import pandas as pd

    from workbench.lab import LabRecipe, build

    build(
        tmp_path / "lab",
        LabRecipe(base="tiny-llama", n=40, canaries=(1,), seed=0, epochs=2, lr=5e-3, rank=4),
        command="test",
    )
    out, greedy = tmp_path / "ranking.parquet", tmp_path / "greedy.csv"
    argv = [
        "selec",
        "--base",
        "tiny-llama",
        "--tuned",
        "tiny-llama",
        "--tuned-adapter",
        str(tmp_path / "lab" / "adapter"),
    ]
    sizes = ["--members", "10", "--nonmembers", "5", "--other", "10", "--projection-dim", "256"]
    assert main([*argv, *sizes, "--out", str(out), "--greedy", str(greedy)]) == 0
    ranking = pd.read_parquet(out)
    assert len(ranking) == 25 and ranking["member"].sum() == 10 and ranking["score"].is_monotonic_decreasing
    assert len(pd.read_csv(greedy)) == 10
    printed = capsys.readouterr().out
    assert "precision@10" in printed and "random 0.400" in printed
    assert (
        "Finds the domain" in printed
        and "Finds the members" in printed
        and "members: AUC [95%]" in printed
        and "reference" in printed
    )
    sizes_without = [
        "--members",
        "10",
        "--nonmembers",
        "0",
        "--other",
        "10",
        "--projection-dim",
        "256",
        "--no-baseline",
    ]
    assert main([*argv, *sizes_without, "--out", str(out)]) == 0
    assert "Finds the members: not asked" in capsys.readouterr().out
    pool = tmp_path / "pool.txt"
    pool.write_text("Patient: I have a cough.\nSunny in Oslo tomorrow.\n")
    assert main([*argv, "--pool", str(pool), "--k", "1", "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == 2 and "precision" not in capsys.readouterr().out


def test_selec_bad_input_is_a_clean_error(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    base = ["selec", "--base", "tiny-llama", "--out", str(tmp_path / "r.csv")]
    for argv, message in [
        (["--tuned", "tiny-llama"], "needs a lab model"),
        (["--tuned", "tiny-gpt2", "--pool", str(empty)], "is empty"),
        (["--tuned", "tiny-gpt2", "--pool", str(tmp_path / "missing.txt")], "Cannot read"),
        (
            ["--tuned", "tiny-llama", "--pool", str(REFERENCE_CORPUS / "mit-license.txt"), "--params", "("],
            "Bad parameter pattern",
        ),
    ]:
        assert main([*base, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_sink_mechanism_writes_the_tables_the_page_reads(tmp_path, capsys):
    from workbench import sink_mechanism

    assert (
        main(
            [
                "sink-mechanism",
                "--model",
                "tiny-llama",
                "--repeats",
                "10",
                "--repeats",
                "20",
                "--heads",
                "2",
                "--neuron-layers",
                "1",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "no leading token, 10 repeats: cosine with position 0 1.000" in out and "candidate sink neurons" in out
    saved = sink_mechanism.load_result(tmp_path / "m")
    assert saved["manifest"]["repeats"] == [10, 20] and len(saved["sink_fractions"]) == 2 * 2 * 2 * 2


def test_pii_types_texts_and_reports_its_recognizers(tmp_path, capsys):
    assert main(["pii", "call (555) 148-4117", "MRN-5257-3105 is on file", "nothing here"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "1: PHONE_NUMBER '(555) 148-4117' (0.40)",
        "2: MEDICAL_RECORD_NUMBER 'MRN-5257-3105' (0.60)",
        "3: nothing found",
    ]
    assert main(["pii", "--recognizers"]) == 0
    printed = capsys.readouterr().out
    assert (
        "MedicalRecordNumberRecognizer" in printed
        and "not checked (need a spaCy NER model):" in printed
        and "PERSON" in printed
    )
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    assert main(["pii", "--file", str(latin)]) == 2
    assert main(["pii"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_canaries_cards_from_shipped_and_given_runs(tmp_path, capsys):
    import pandas as pd

    from workbench.canary_card import SHIPPED_AUDIT_LAB
    from workbench.membership import SHIPPED_MEMBERSHIP

    assert main(["canaries"]) == 0
    printed = capsys.readouterr().out
    assert "(555) 148-4117 (phone, inserted 8x):" in printed and "repeated tokens, grid: outputs: 4 of 1024" in printed
    assert "the audit's ε lower bound over all inserted canaries: 1.16 (at most 2.11 showable)" in printed
    run, scores = tmp_path / "run.jsonl", tmp_path / "audit.parquet"
    pd.DataFrame({"output": ["x (555) 148-4117 y", "nothing"]}).to_json(run, orient="records", lines=True)
    shipped = pd.read_parquet(SHIPPED_MEMBERSHIP / "audit-scores.parquet")
    shipped[shipped["lab"] == SHIPPED_AUDIT_LAB].drop(columns="lab").to_parquet(scores)
    card = tmp_path / "card.csv"
    assert (
        main(["canaries", "--lab", "data/lab", "--run", f"mine={run}", "--audit", str(scores), "--out", str(card)]) == 0
    )
    printed = capsys.readouterr().out
    assert "mine: outputs: 1 of 2" in printed and "audit rank: 1 of 21 (never-inserted ranked as high: 6%)" in printed
    assert pd.read_csv(card).set_index("secret").loc["(555) 148-4117", "mine|outputs"] == 1
    assert main(["canaries", "--backdoor", "shipped"]) == 0
    assert "victim-clean: outputs" in capsys.readouterr().out
    for argv, message in [
        (["canaries", "--run", "x=y.parquet"], "--lab DIR"),
        (["canaries", "--lab", "data/lab", "--run", "x"], "NAME=FILE"),
        (["canaries", "--backdoor", "shipped", "--lab", "data/lab"], "give it alone"),
        (["canaries", "--lab", str(tmp_path)], "not a saved lab dataset"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
