"""Shared helpers of the Streamlit pages: database handle, current project, worker start-up, messages."""
