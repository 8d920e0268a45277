"""Media tests need nginx with the rtmp and stream modules, ffmpeg and ffprobe.

Debian: nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg. Without them the media
tests are skipped on a developer's machine, and fail in CI.
"""

from __future__ import annotations

import os
import shutil

import pytest

from hack.media.harness import STREAM_MODULE
from restream_operator.render.nginx import RTMP_MODULE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [t for t in ("nginx", "ffmpeg", "ffprobe") if shutil.which(t) is None]
    missing += [m for m in (RTMP_MODULE, STREAM_MODULE) if not os.path.exists(m)]
    if not missing or os.environ.get("CI"):
        return  # in CI a missing tool must fail the tests, not skip them
    skip = pytest.mark.skip(reason=f"media tools missing: {', '.join(missing)}")
    for item in items:
        if "media" in item.keywords:
            item.add_marker(skip)
