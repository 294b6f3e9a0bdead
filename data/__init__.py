"""Sample corpus, run configurations and the clip synthesiser used by the sample and the tests."""
