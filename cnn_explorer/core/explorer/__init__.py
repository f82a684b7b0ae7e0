"""The network explorer without a screen: its session (models, image, cursor, requests), the pure tasks
that workers run for it, a bounded cache, and the text it shows. Nothing here imports Qt."""
