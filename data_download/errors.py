"""The one error type of data_download: its message is one line for the user."""


class DownloadError(RuntimeError):
    """A download, verification or extraction failed; the message is one line for the user."""
