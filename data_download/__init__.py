"""Fetch, verify, unpack and check real datasets (emg2qwerty); knows nothing of models.

python -m data_download emg2qwerty --dest DIR [--mirror URL]
    [--split NAME|FILE.yaml ...] [--users ID ...]     (a subset: the archive streamed)
python -m data_download fetch URL --dest DIR [--sha256 HEX]
python -m data_download check DIR [--split NAME ...]
"""

from .archive import UnsafeArchiveError, check_member, safe_extract
from .emg2qwerty import DatasetReport, download, report
from .fetch import DownloadError, FetchOptions, fetch

__all__ = [
    "DatasetReport",
    "DownloadError",
    "FetchOptions",
    "UnsafeArchiveError",
    "check_member",
    "download",
    "fetch",
    "report",
    "safe_extract",
]
