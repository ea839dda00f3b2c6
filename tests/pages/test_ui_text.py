from workbench.ui.text import highlight_spans


def test_highlight_spans_escapes_and_marks():
    assert highlight_spans("a <b> c", [(2, 5)]) == "a <mark>&lt;b&gt;</mark> c"
    assert highlight_spans("abcdef", [(3, 5), (0, 1)]) == "<mark>a</mark>bc<mark>de</mark>f"
    assert highlight_spans("abcdef", [(0, 4), (2, 6)]) == "<mark>abcd</mark><mark>ef</mark>"  # overlap merged forward
    assert highlight_spans("x", []) == "x"
