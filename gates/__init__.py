"""Quality gates: each a small module judging one row, with its threshold in configuration.

A row enters the corpus only when it is complete and every enabled gate passes; otherwise it goes to
the human-review queue with every verdict, score and reason kept on the row.
"""
