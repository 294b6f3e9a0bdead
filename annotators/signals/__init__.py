"""Signal annotators: opinions measured from the clip itself, with no model weights.

`prosody` and `faces` measure; `clues`, `describe`, `translate` and `lexicon` turn measurements
into the same replies a model role gives. They ground the gates and give cross-validation an
opinion that shares nothing with the LLMs.
"""
