"""Transfer learning as the course teaches it: the guide (dataset size × similarity), linear probes at any
depth, the strategies as small objects, the LR finder, and the fine-tune page's Qt-free session.

Nothing here imports Qt; the fine-tune page and the CLI call the same functions.
"""
