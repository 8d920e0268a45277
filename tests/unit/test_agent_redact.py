"""Secrets never reach an agent's output, in any spelling; every log line is JSON."""

from __future__ import annotations

import io
import json
import logging

import pytest

from restream_operator.agent.jsonlog import JsonFormatter
from restream_operator.agent.redact import MASK, Redactor, secret_forms

KEY = "FB-123?s_bl=1&a=b/c d"


def test_secret_forms_cover_url_form_and_json_spellings() -> None:
    forms = secret_forms(KEY)
    assert {
        KEY,
        "FB-123%3Fs_bl%3D1%26a%3Db%2Fc%20d",  # quote(safe="")
        "FB-123%3Fs_bl%3D1%26a%3Db/c%20d",  # quote(safe="/")
        "FB-123%3Fs_bl%3D1%26a%3Db%2Fc+d",  # form encoding
        "FB-123%3fs_bl%3d1%26a%3db%2fc%20d",  # lower-case hex
    } <= forms
    assert secret_forms("") == set()
    assert json.dumps('a"b\\c')[1:-1] in secret_forms('a"b\\c')


def test_redactor_masks_every_form_and_the_longest_first() -> None:
    redact = Redactor(["abc", "abcdef", ""])
    assert redact("x abcdef y abc z") == f"x {MASK} y {MASK} z"
    redact.add(KEY)
    text = f"rtmp://h/live/{KEY} and name=FB-123%3Fs_bl%3D1%26a%3Db%2Fc+d"
    assert KEY not in redact(text) and "%3F" not in redact(text)
    assert not Redactor() and redact


def _format(redact: Redactor, *args: object, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redact))
    logger = logging.getLogger(f"test.redact.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise ValueError(f"failed with {KEY}")
    except ValueError:
        logger.error(*args, exc_info=True, extra=extra)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert KEY not in line
    doc: dict[str, object] = json.loads(line)
    return doc


def test_json_log_lines_mask_message_fields_and_tracebacks() -> None:
    redact = Redactor([KEY])
    doc = _format(redact, "pushing to %s", f"rtmp://h/{KEY}", command=f"ffmpeg rtmp://h/{KEY}")
    assert doc["msg"] == f"pushing to rtmp://h/{MASK}"
    assert doc["command"] == f"ffmpeg rtmp://h/{MASK}"
    assert doc["level"] == "error" and str(doc["time"]).endswith("Z")
    assert MASK in str(doc["exception"])


def test_a_secret_with_json_special_characters_is_masked_too() -> None:
    secret = 'k"e\\y'
    doc = _format(Redactor([secret, KEY]), "key is %s", secret)
    assert doc["msg"] == f"key is {MASK}"


@pytest.mark.parametrize("key", ['"', "1", "a", "{", "\\", ":"])
def test_a_one_character_key_leaves_log_lines_valid_json(key: str) -> None:
    # Masking the serialized line would cut through its quotes, names and numbers.
    doc = _format(Redactor([key, KEY]), "pushing to %s", f"rtmp://h/live2/{key}", restarts=1)
    assert key not in str(doc["msg"]) and str(doc["msg"]).endswith(f"/{MASK}")
    assert str(doc["time"]).endswith("Z") and doc["level"] == "error"
    assert str(doc["logger"]).startswith("test.redact.")


def test_documents_are_masked_value_by_value() -> None:
    redact = Redactor(["k3y"])
    doc = {
        "state": "k3y",
        "lastError": "rtmp://h/k3y",
        "nested": [{"name": ("a", "k3y")}, 7, None, True, 1.5],
        "object": ValueError("bad k3y"),
    }
    assert redact.value(doc, keep=("state",)) == {
        "state": "k3y",  # the agent's own field, kept as it is
        "lastError": f"rtmp://h/{MASK}",
        "nested": [{"name": ["a", MASK]}, 7, None, True, 1.5],
        "object": f"bad {MASK}",
    }
