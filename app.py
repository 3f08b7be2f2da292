"""LiST Studio: `streamlit run app.py`. Navigation, the project switcher, and a worker started if none runs."""

import streamlit as st

import storage
from ui.common import GOTO, access_granted, current_project, db, ensure_worker, md_escape

st.set_page_config(page_title="LiST Studio", page_icon=":material/label:", layout="wide")

pages = [
    st.Page("pages/projects.py", title="Projects", icon=":material/folder:", default=True, url_path="home"),
    st.Page("pages/prompt.py", title="Prompt workbench", icon=":material/science:"),
    st.Page("pages/label.py", title="Label", icon=":material/label:"),
    st.Page("pages/train.py", title="Train", icon=":material/rocket_launch:"),
    st.Page("pages/rounds.py", title="Rounds", icon=":material/monitoring:"),
    st.Page("pages/inspect.py", title="Inspect", icon=":material/search:"),
    st.Page("pages/export.py", title="Export & predict", icon=":material/download:"),
    # the default page lives at "/": "/projects" (a bookmark, a typed address) opens it too, not "Page not found"
    st.Page("pages/projects.py", title="Projects", url_path="projects", visibility="hidden"),
]
nav = st.navigation(pages)
if not access_granted():  # opened to a network: nothing is shown before the secret
    st.stop()

with st.sidebar:
    projects = storage.list_projects(db())
    if projects:
        ids = [p.id for p in reversed(projects)]  # newest first: the default for a new session
        goto = st.session_state.pop(GOTO, None)  # set by a page (Open, Create) before this widget exists
        if goto in ids:
            st.session_state["project"] = goto
        elif st.session_state.get("project") not in ids:
            st.session_state.pop("project", None)
        asked = st.query_params.get("project")  # read before the widget replaces a name it does not know
        # bound to the URL (?project=NAME; names are unique): a reload or a second tab keeps the project
        st.selectbox("Project", ids, format_func={p.id: p.name for p in projects}.get,
                     key="project", bind="query-params")  # fmt: skip
        p = current_project()
        if asked and p is not None and asked not in {q.name for q in projects}:  # a stale bookmark, a renamed project
            st.toast(md_escape(f"No project named “{asked}”: this is “{p.name}”."))
        if p is not None:
            counts = storage.class_counts(db(), p.id)
            st.caption(md_escape(f"{sum(counts)} / {p.target_gold} gold labels · {p.backbone}"))
    st.caption(ensure_worker())

nav.run()
