"""Interactive widgets for the book, one function per widget, each returning an ipywidgets object whose first
frame is already drawn (so the static HTML shows a real figure). Submodules by chapter."""
