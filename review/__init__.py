"""Human review in Label Studio: rows a quality gate held back go to a review project (`queue`),
reviewers accept or reject them there and may correct the labels, and their decisions come back as
`ReviewDecision` records (`decisions`) that the next build applies.

Modules, one job each: `label_studio` (the REST connection), `config` (the labeling interface),
`media` (clip URLs Label Studio serves), `tasks` (a row as a task), `queue` (push), `decisions` (pull,
and `load_decisions` for the build).
"""
