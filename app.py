"""Memorization Workbench: `streamlit run app.py` (or `make app`)."""

import streamlit as st

from workbench.ui import model_sidebar

st.set_page_config(page_title="Memorization Workbench", page_icon="🔍", layout="wide")

navigation = st.navigation([st.Page("pages/home.py", title="Home", icon="🏠", default=True)])
model_sidebar()
navigation.run()
