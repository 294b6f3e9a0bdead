"""The two EMER metrics and the evaluation report.

- openset: the authors' `name, openset` label CSVs and list cells;
- synonyms / synonym_llm: synonym groups from a file, or per clip from our LLM endpoint (cached);
- emer: the EMER / MER2024 open-vocabulary metric (Accuracy_s, Recall_s, Avg);
- wheel: the emotion-wheel metric (OV-MER onward; F1 at level 1 and level 2 over five wheels);
- report: the Markdown / JSON report and the label-distribution plot.
The `evaluate` flow (flows/evaluate.py) puts them together.
"""
