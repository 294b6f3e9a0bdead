"""Training-ready exports: the files a trainer's own data loader reads, from the rows fit to publish.

One module per consumer (affectgpt, mercaption, llamafactory, atomic); `source` reads the sealed `train`
split of a build and chooses a tier's rows, `media` places the clips and audio under the names each reader
expects, `manifest` says what was written. `run.export_training` ties them together (the CLI's `export`
command and the Prefect flow `export-training` call it).
"""

FORMATS: tuple[str, ...] = ("affectgpt", "mercaption", "llamafactory", "atomic")
MEDIA_MODES: tuple[str, ...] = ("link", "copy", "none")
