"""The layering, read from the source (docs/architecture.md): only workbench/ui/ imports streamlit; the kernel,
the explorations and the front ends import only whom they may; no import cycle."""

import ast
import graphlib
from pathlib import Path

WORKBENCH = Path(__file__).resolve().parents[2] / "workbench"


def _imports_streamlit(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "streamlit":
            return True
    return False


def test_only_ui_imports_streamlit():
    modules = [p for p in WORKBENCH.rglob("*.py") if "ui" not in p.relative_to(WORKBENCH).parts]
    assert len(modules) >= 4
    offenders = [str(p.relative_to(WORKBENCH)) for p in modules if _imports_streamlit(p)]
    assert offenders == []


def test_the_check_detects_an_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from streamlit import cache_resource\n")
    assert _imports_streamlit(bad)


KERNEL = {
    "builds", "cache", "config", "contract", "corpus", "decoding", "endpoint", "lab", "lab_data", "lab_vocabulary",
    "metrics", "overlap", "pii", "plots", "plots_attacks", "prompts", "registry", "runs", "sampling", "session", "stats",
    "training", "vllm_server",
}  # fmt: skip
EXPLORATIONS = {
    "attention", "audit", "backdoor", "backdoor_attack", "backdoor_scoring", "canary_card", "divergence", "membership", "propinfer", "propinfer_judge", "propinfer_pipeline", "reactivation", "reactivation_books", "reactivation_measure", "reactivation_styles", "selec", "selec_judge", "selec_shift", "shadow_calibration", "shadows", "similarity", "sink_mechanism",
}  # fmt: skip
# The sideways imports the architecture allows, each for a stated reason (docs/architecture.md).
SIDEWAYS = {
    ("attention", "divergence"),  # a head-scaling mitigation is measured by the divergence pipeline
    ("backdoor_attack", "backdoor"),  # one exploration in three modules: the build, its metrics, the attacker
    ("backdoor_attack", "backdoor_scoring"),
    ("backdoor_scoring", "backdoor"),
    (
        "canary_card",
        "audit",
    ),  # one secret followed through every exploration: the audit's bound, the shipped runs' folders
    ("canary_card", "backdoor"),
    ("canary_card", "backdoor_attack"),
    ("canary_card", "membership"),
    ("divergence", "similarity"),  # counting outputs that match the lab's training set by embedding
    ("propinfer", "similarity"),  # labeling by embedding similarity
    (
        "propinfer_judge",
        "propinfer",
    ),  # one exploration in four modules: the estimate, the shadow set, its maps, how they are judged
    ("propinfer_judge", "shadow_calibration"),
    ("propinfer_judge", "shadows"),
    ("propinfer_pipeline", "propinfer"),  # the exploration's one call: sample, estimate, judge
    ("propinfer_pipeline", "propinfer_judge"),
    ("propinfer_pipeline", "shadows"),
    ("reactivation", "reactivation_books"),  # one exploration in four modules: styles, books, build, measurement
    ("reactivation_books", "reactivation_styles"),
    ("reactivation_measure", "reactivation"),
    ("selec", "selec_shift"),  # one exploration in three modules: the weight shift, the ranking, how it is judged
    ("selec_judge", "membership"),  # SELEC is read against the membership attacks on the same texts
    ("selec_judge", "selec"),
    ("shadow_calibration", "propinfer"),  # the maps' word features are the lab labeler's patterns
    ("shadows", "propinfer"),  # property inference's calibration, in a module of its own
    ("shadows", "shadow_calibration"),  # the shadow set fits and sweeps the calibration maps
    ("sink_mechanism", "attention"),  # the mechanism behind divergence, measured with the sink exploration's tools
    ("sink_mechanism", "divergence"),  # its causal test measures the divergence rate
}
MODEL_IMPLEMENTATIONS = {"contract.py", "session.py", "endpoint.py"}


def _module(path: Path) -> str:
    parts = path.relative_to(WORKBENCH).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "workbench"


def _imports(path: Path) -> set[str]:
    """The workbench modules a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "workbench":
            names = node.module.split(".")[1:]
            if not names:  # from workbench import stats
                found |= {a.name for a in node.names if (WORKBENCH / f"{a.name}.py").exists()}
            else:
                found.add(".".join(names))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("workbench.") for a in node.names if a.name.startswith("workbench.")}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) - {_module(p)} for p in sorted(WORKBENCH.rglob("*.py"))}


def test_the_layers_are_the_ones_documented():
    modules = set(_graph())
    top_level = {m for m in modules if "." not in m and m not in {"workbench", "__main__", "cli", "gallery", "ui"}}
    assert top_level == KERNEL | EXPLORATIONS, "a new module: add it to a layer here and in docs/architecture.md"


def test_no_import_cycle_inside_the_package():
    graphlib.TopologicalSorter(_graph()).prepare()  # raises CycleError, naming the cycle


def test_the_kernel_imports_only_the_kernel():
    wrong = {(m, d) for m, deps in _graph().items() if m in KERNEL for d in deps if d.split(".")[0] not in KERNEL}
    assert not wrong


def test_explorations_import_the_kernel_and_only_the_allowed_sideways_modules():
    sideways = {
        (m, d) for m, deps in _graph().items() if m in EXPLORATIONS for d in deps if d.split(".")[0] not in KERNEL
    }
    assert sideways <= SIDEWAYS, sideways - SIDEWAYS
    assert SIDEWAYS <= sideways, f"no longer imported, drop from the allowed list: {SIDEWAYS - sideways}"


def test_nothing_outside_the_two_model_implementations_asks_which_backend_it_has():
    sources = [
        *WORKBENCH.rglob("*.py"),
        *(WORKBENCH.parent / "app_pages").rglob("*.py"),
        WORKBENCH.parent / "app.py",
        *(WORKBENCH.parent / "benchmarks").rglob("*.py"),
    ]
    branching = [
        str(p.relative_to(WORKBENCH.parent))
        for p in sources
        if p.name not in MODEL_IMPLEMENTATIONS and "has_weights" in p.read_text()
    ]
    assert not branching


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from workbench import stats\n\ndef f():\n    from workbench.endpoint import connect\n    import workbench.overlap\n"
    )
    assert _imports(module) == {"stats", "endpoint", "overlap"}


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80  # counted on the code as ruff formats it (make test checks that)


def _oversized(path: Path) -> list[str]:
    source = path.read_text()
    found = [f"{path.name}: {len(source.splitlines())} lines"] if len(source.splitlines()) > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.name}: {node.name} is {length} lines")
    return found


def test_no_library_module_or_function_is_over_its_size():
    oversized = [line for path in sorted(WORKBENCH.rglob("*.py")) for line in _oversized(path)]
    assert not oversized, f"split along the kernel and exploration lines (docs/architecture.md): {oversized}"


def test_the_size_check_sees_a_long_function(tmp_path):
    module = tmp_path / "long.py"
    module.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert _oversized(module) == [f"long.py: f is {MAX_FUNCTION_LINES + 1} lines"]
    module.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert _oversized(module) == [f"long.py: {MAX_MODULE_LINES + 1} lines"]
