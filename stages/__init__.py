"""Processing stages, one per module: typed input, typed output, no orchestration inside."""
