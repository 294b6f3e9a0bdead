"""The engine: one clip through the stages in the method's order, assembled from configuration."""
