"""Memorization Workbench: `streamlit run app.py` (or `make app`)."""

import streamlit as st

from workbench.ui import model_sidebar

st.set_page_config(page_title="Memorization Workbench", page_icon=":material/search:", layout="wide")

# Pages live in app_pages/, not pages/: Streamlit runs a pages/ folder as a legacy
# multipage app (skipping this script and its sidebar) when a page URL is opened first.
home = st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)
navigation = st.navigation(
    [
        home,
        st.Page("app_pages/repeated_tokens.py", title="Repeated tokens", icon=":material/repeat:"),
        st.Page("app_pages/attention_sinks.py", title="Attention sinks", icon=":material/grid_on:"),
        st.Page("app_pages/property_inference.py", title="Property inference", icon=":material/query_stats:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("app_pages/weight_diff.py", title="Weight diff", icon=":material/difference:"),
        st.Page("app_pages/backdoor.py", title="Backdoor extraction", icon=":material/key:"),
        st.Page("app_pages/reactivation.py", title="Reactivation", icon=":material/replay:"),
        st.Page("app_pages/membership.py", title="Membership", icon=":material/fingerprint:"),
        st.Page("app_pages/lab.py", title="Ground-truth lab", icon=":material/science:"),
    ]
)
if navigation.url_path == home.url_path:
    # Home needs no model: its gallery is drawn first, and the model loads after it.
    navigation.run()
    model_sidebar()
else:
    model_sidebar()
    navigation.run()
