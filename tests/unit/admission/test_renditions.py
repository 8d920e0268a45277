"""Admission of spec.renditions and restreams[].rendition: each bad input refused on its
field, with a message that says what is wrong and how to fix it."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import assert_refused, check, livestream, restream, warnings_on


def rendition(name: str = "480p", **video: Any) -> dict[str, Any]:
    return {"name": name, "video": {"height": 480, "bitrateKbps": 1200, **video}}


def on(name: str, *renditions: Any) -> dict[str, Any]:
    """A LiveStream whose one destination receives rendition ``name``."""
    return livestream(restream(rendition=name), renditions=list(renditions))


R0 = 'spec.renditions[0] ("480p")'
R1 = 'spec.renditions[1] ("480p")'


@pytest.mark.parametrize(
    ("obj", "field", "phrase"),
    [
        pytest.param(on("480p", rendition(height=0)), f"{R0}.video.height",
                     "between 96 and 2160, not 0", id="height-zero"),
        pytest.param(on("480p", rendition(height=481)), f"{R0}.video.height",
                     "must be even", id="height-odd"),
        pytest.param(on("480p", rendition(height=4320)), f"{R0}.video.height",
                     "between 96 and 2160", id="height-8k"),
        pytest.param(on("480p", rendition(fps=0)), f"{R0}.video.fps", "between 1 and 60",
                     id="fps-zero"),
        pytest.param(on("480p", rendition(fps=120)), f"{R0}.video.fps", "between 1 and 60",
                     id="fps-high"),
        pytest.param(on("480p", rendition(bitrateKbps=10)), f"{R0}.video.bitrateKbps",
                     "between 100 and 50000", id="bitrate-low"),
        pytest.param(on("480p", rendition(maxBitrateKbps=800)), f"{R0}.video.maxBitrateKbps",
                     "at least bitrateKbps (800 < 1200)", id="max-below-target"),
        pytest.param(on("480p", rendition(keyframeIntervalSeconds=0)),
                     f"{R0}.video.keyframeIntervalSeconds", "between 1 and 10", id="gop-zero"),
        pytest.param(on("480p", rendition(preset="Veryfast")), f"{R0}.video.preset",
                     "did you mean veryfast?", id="preset-case"),
        pytest.param(on("480p", rendition(preset="insane")), f"{R0}.video.preset",
                     "must be one of ultrafast", id="preset-unknown"),
        pytest.param(on("480p", rendition(profile="high10")), f"{R0}.video.profile",
                     "must be one of baseline, main, high", id="profile"),
        pytest.param(
            on("480p", {**rendition(), "audio": {"sampleRate": 22050}}),
            f"{R0}.audio.sampleRate", "must be one of 44100, 48000", id="sample-rate",
        ),
        pytest.param(
            on("480p", {**rendition(), "audio": {"channels": 6}}),
            f"{R0}.audio.channels", "between 1 and 2", id="channels",
        ),
        pytest.param(
            on("480p", {"name": "480p", "video": {"bitrateKbps": 1200}}),
            f"{R0}.video.height", "is missing: set the output height", id="height-missing",
        ),
        pytest.param(
            on("480p", rendition(), rendition()), f"{R1}.name",
            'the same name as spec.renditions[0] ("480p")', id="duplicate-name",
        ),
        pytest.param(
            on("480P", rendition("480P")), 'spec.renditions[0] ("480P").name',
            "is not a rendition name: use lowercase", id="name-uppercase",
        ),
        pytest.param(
            on("x" * 21, rendition("x" * 21)), f'spec.renditions[0] ("{"x" * 21}").name',
            "more than 20", id="name-long",
        ),
    ],
)  # fmt: skip
def test_a_bad_rendition_is_refused(obj: Any, field: str, phrase: str) -> None:
    assert_refused(obj, field, phrase)


def test_a_restream_naming_a_rendition_that_does_not_exist_is_refused_naming_the_defined_ones() -> (
    None
):
    obj = on("720p", rendition("480p"), rendition("360p", height=360, bitrateKbps=800))
    assert_refused(obj, 'spec.restreams[0] ("X").rendition', "spec.renditions defines 480p, 360p")
    assert_refused(on("720p"), 'spec.restreams[0] ("X").rendition', "spec.renditions defines none")


def test_a_good_rendition_passes_and_an_unused_one_is_warned_of() -> None:
    used = check(on("480p", rendition(preset="medium", profile="main", maxBitrateKbps=1500)))
    assert used.allowed, used.message()
    assert not warnings_on(used, "spec.renditions")
    unused = check(livestream(restream(), renditions=[rendition()]))
    assert unused.allowed
    (warning,) = warnings_on(unused, "spec.renditions")
    assert "used by no enabled destination: no encoder runs" in warning


def test_a_disabled_destination_does_not_count_as_a_use() -> None:
    obj = livestream(restream(rendition="480p", enabled=False), renditions=[rendition()])
    assert check(obj).allowed
    assert warnings_on(check(obj), "spec.renditions")
