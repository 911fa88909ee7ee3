"""Training data: the procedural ``shapes`` dataset, video folders, and ArrayRecord latent shards."""


class DataError(ValueError):
    """Data that cannot feed the configured model; the message names the file, the problem and the fix."""
