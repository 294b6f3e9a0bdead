"""The run's infrastructure, independent of any stage: checkpoint, model gateway, isolated decoders, statistics."""
