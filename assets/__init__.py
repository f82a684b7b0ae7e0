"""Sample photos and small bundled data; see LICENSES.md."""
