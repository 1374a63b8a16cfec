"""Sizes and sha256 of emg2qwerty's files, known before any download.

Split files: measured once (``git show COMMIT:config/user/NAME.yaml | sha256sum`` in a
clone of facebookresearch/emg2qwerty) and fetched from that commit's raw URL, whose bytes
cannot change. The archive: emg2qwerty publishes neither its size nor a checksum (README
at that commit: a bare S3 link), and it was not measured here, so it is not pinned; its
size and sha256 are recorded in the manifest by the first complete, checked download and
every later download must match them. A ``--mirror`` is not pinned either (it may serve
other files by design); it is trusted like ``fetch``.
"""

SPLITS_COMMIT = "3200d91eeb952cbed1f278e47d0cc56928334fd1"  # 2025-06-11, main at the time
SPLITS: dict[str, tuple[int, str]] = {  # name -> (bytes, sha256)
    "generic": (115234, "64dc387b33e9901857192db03d0281d0da84fbc486ff392015a1732669090f57"),
    "user0": (1661, "8f8dc44b2290adcff0cf9d18664482783a8b09fd5ad0b08e8adb37d4e2739dcd"),
    "user1": (1534, "c536edb44fa652073857fc1e15cb2cccea01e19bac4cc372935207699b8ad8f4"),
    "user2": (1547, "05561592741ac4f34fa54a1993e6220b3de19f345ccd80850ee126afc478462a"),
    "user3": (1433, "ca6518091052351e57693b2864d3afe59a6c686a4bb69b8378523cdc5559ec8a"),
    "user4": (1433, "ffcd988e16426d9fe204a33885018bec77ee1a56a9c42c72aec52f2d8bba69a1"),
    "user5": (1433, "c8fe60ed5035384f8524c57d4e03657a34f75df804e167ba6cd0c500b366f6d6"),
    "user6": (1433, "daab8b6046482e40f8a9c3fd4c8bdf800dd7fbcb1fdda6bb38fa69fb1da57630"),
    "user7": (1433, "c56b44f40f9b08a9c5df8067bb1f38f1b81788240e09c0dab14817a52d3be43e"),
}
# emg2qwerty's historic config/user/single_user.yaml (added at this commit, gone from main
# since): commit, bytes, sha256. The shipped copy puts a source header in place of its
# first line ("# @package _global_"); tests/test_shipped_splits.py checks the rest.
SINGLE_USER = (
    "5e79ba18e8dea302c11fa3a98219253406fec003",
    2195,
    "4cad84871c685946dd04913ef9013080e2cd0b1f63d6e6558b30495f313ff385",
)
